import { InvalidStateError, NotFoundError } from '../../core/errors.ts';
import { parseJson, toJson } from '../../core/json.ts';
import type { Json, SessionMessage } from '../../core/types.ts';
import type { AuditEntry } from '../audit.ts';
import type { SessionInfo, SessionStore } from '../store.ts';
import { insertAudit } from './audit-sql.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor } from './executor.ts';

/**
 * Session lanes and history. A lane is held by `sessions.active_run`, taken with a
 * conditional UPDATE, so two processes accepting messages for one session at once
 * still queue them strictly in order.
 */

interface SessionRow {
  key: string;
  agent: string;
  active_run: string | null;
  next_seq: number | string;
  epoch: number | string;
  forked_from: string | null;
  seed_history: string | null;
  created_at: number | string;
  last_activity_at: number | string;
  reset_at: number | string | null;
}

function toSession(r: SessionRow): SessionInfo {
  return {
    key: r.key,
    agent: r.agent,
    activeRun: r.active_run,
    messages: Number(r.next_seq),
    epoch: Number(r.epoch),
    forkedFrom: r.forked_from,
    createdAt: Number(r.created_at),
    lastActivityAt: Number(r.last_activity_at),
    resetAt: r.reset_at === null ? null : Number(r.reset_at),
  };
}

/**
 * Puts a new run into its session's lane in one statement: creates the session if
 * needed, starts a new epoch if it was last active before `resetBefore` (its reset
 * policy), counts the message, and takes the lane if it is free. Returns the run's
 * place in the lane and whether it may start now.
 */
export async function enterLane(
  tx: SqlExecutor,
  s: { key: string; agent: string; resetBefore: number },
  runId: string,
  now: number,
  audit: AuditEntry[],
): Promise<{ seq: number; epoch: number; active: boolean }> {
  const reset = 'sessions.next_seq > 0 AND sessions.last_activity_at < ?';
  const row = await tx.get<{ next_seq: number | string; epoch: number | string; active_run: string | null; reset_seq: number | string | null }>(
    `INSERT INTO sessions (key, agent, active_run, next_seq, created_at, last_activity_at) VALUES (?, ?, ?, 1, ?, ?)
     ON CONFLICT (key) DO UPDATE SET
       epoch = sessions.epoch + CASE WHEN ${reset} THEN 1 ELSE 0 END,
       reset_at = CASE WHEN ${reset} THEN ? ELSE sessions.reset_at END,
       reset_seq = CASE WHEN ${reset} THEN sessions.next_seq + 1 ELSE sessions.reset_seq END,
       next_seq = sessions.next_seq + 1,
       last_activity_at = ?,
       active_run = COALESCE(sessions.active_run, excluded.active_run)
     RETURNING next_seq, epoch, active_run, reset_seq`,
    [s.key, s.agent, runId, now, now, s.resetBefore, s.resetBefore, now, s.resetBefore, now],
  );
  const seq = Number(row!.next_seq);
  if (row!.reset_seq !== null && Number(row!.reset_seq) === seq) {
    audit.push({ kind: 'session.reset', agent: s.agent, actor: 'reset-policy', data: { session: s.key } });
  }
  return { seq, epoch: Number(row!.epoch), active: row!.active_run === runId };
}

/** Takes a free lane for a run going back into its session (a retried run); false when another run holds it. */
export async function retakeLane(tx: SqlExecutor, sessionKey: string, runId: string): Promise<boolean> {
  return (await tx.run('UPDATE sessions SET active_run = ? WHERE key = ? AND active_run IS NULL', [runId, sessionKey])) === 1;
}

/** Frees a finished run's lane and admits the next run of the session, if any. Returns the admitted task id. */
export async function leaveLane(tx: SqlExecutor, sessionKey: string, runId: string, now: number): Promise<string | null> {
  const freed = await tx.run('UPDATE sessions SET active_run = NULL, last_activity_at = ? WHERE key = ? AND active_run = ?', [now, sessionKey, runId]);
  if (freed !== 1) return null;
  const next = await tx.get<{ id: string; root_task_id: string; agent: string }>(
    `SELECT r.id, r.root_task_id, r.agent FROM runs r JOIN tasks t ON t.id = r.root_task_id
     WHERE r.session_key = ? AND r.state = 'running' AND t.state = 'waiting' AND t.waiting_for = 'lane'
     ORDER BY r.session_seq LIMIT 1`,
    [sessionKey],
  );
  if (!next) return null;
  await tx.run('UPDATE sessions SET active_run = ? WHERE key = ? AND active_run IS NULL', [next.id, sessionKey]);
  await tx.run(`UPDATE tasks SET state = 'queued', waiting_for = NULL, run_at = ?, updated_at = ? WHERE id = ? AND waiting_for = 'lane'`, [
    now,
    now,
    next.root_task_id,
  ]);
  await insertAudit(tx, now, [{ kind: 'task.queued', runId: next.id, taskId: next.root_task_id, agent: next.agent, actor: 'lane', data: { session: sessionKey } }]);
  return next.root_task_id;
}

/** The session's messages before run `seq` in the current epoch, oldest first, at most `limit`. */
export async function sessionHistory(db: SqlExecutor, key: string, seq: number, epoch: number, limit: number): Promise<SessionMessage[]> {
  if (limit === 0) return [];
  const session = await db.get<{ seed_history: string | null }>('SELECT seed_history FROM sessions WHERE key = ?', [key]);
  const rows = await db.all<{ id: string; input: string; output: string | null; state: string; created_at: number | string; finished_at: number | string | null }>(
    `SELECT id, input, output, state, created_at, finished_at FROM runs
     WHERE session_key = ? AND session_epoch = ? AND session_seq < ? ORDER BY session_seq DESC LIMIT ?`,
    [key, epoch, seq, limit],
  );
  const messages: SessionMessage[] = epoch === 0 ? (parseJson<SessionMessage[]>(session?.seed_history) ?? []) : [];
  for (const r of rows.reverse()) {
    const input = parseJson<Json>(r.input);
    const text = input !== null && typeof input === 'object' && !Array.isArray(input) && typeof input.text === 'string' ? input.text : null;
    messages.push({ role: 'user', runId: r.id, at: Number(r.created_at), ...(text === null ? { input } : { text }) });
    if (r.state === 'succeeded') messages.push({ role: 'agent', runId: r.id, at: Number(r.finished_at ?? r.created_at), output: parseJson(r.output) });
  }
  return messages.slice(-limit);
}

export function sqlSessionStore(db: SqlBackend): SessionStore {
  /** The session's current history, as its next message would see it. */
  const messages = async (key: string, limit: number): Promise<SessionMessage[]> => {
    const row = await db.read.get<SessionRow>('SELECT * FROM sessions WHERE key = ?', [key]);
    if (!row) throw new NotFoundError('session', key);
    return sessionHistory(db.read, key, Number(row.next_seq) + 1, Number(row.epoch), limit);
  };
  return {
    async list(filter: { agent?: string; limit: number }): Promise<SessionInfo[]> {
      const rows = filter.agent
        ? await db.read.all<SessionRow>('SELECT * FROM sessions WHERE agent = ? ORDER BY last_activity_at DESC LIMIT ?', [filter.agent, filter.limit])
        : await db.read.all<SessionRow>('SELECT * FROM sessions ORDER BY last_activity_at DESC LIMIT ?', [filter.limit]);
      return rows.map(toSession);
    },

    async get(key: string): Promise<SessionInfo | null> {
      const row = await db.read.get<SessionRow>('SELECT * FROM sessions WHERE key = ?', [key]);
      return row ? toSession(row) : null;
    },

    messages,

    async reset(key: string, actor: string, now: number): Promise<boolean> {
      const done = await db.transaction(async (tx) => {
        const changed = await tx.run('UPDATE sessions SET epoch = epoch + 1, reset_at = ? WHERE key = ?', [now, key]);
        if (changed === 1) await insertAudit(tx, now, [{ kind: 'session.reset', actor, data: { session: key } }]);
        return changed === 1;
      });
      if (!done) throw new NotFoundError('session', key);
      return done;
    },

    async fork(key: string, newKey: string, historyLimit: number, actor: string, now: number): Promise<SessionInfo> {
      const history = await messages(key, historyLimit);
      return db.transaction(async (tx) => {
        const parent = await tx.get<SessionRow>('SELECT * FROM sessions WHERE key = ?', [key]);
        if (!parent) throw new NotFoundError('session', key);
        const row = await tx.get<SessionRow>(
          `INSERT INTO sessions (key, agent, forked_from, seed_history, created_at, last_activity_at) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (key) DO NOTHING RETURNING *`,
          [newKey, parent.agent, key, toJson(history), now, now],
        );
        if (!row) throw new InvalidStateError(`session ${newKey} exists already`);
        await insertAudit(tx, now, [{ kind: 'session.forked', agent: parent.agent, actor, data: { from: key, session: newKey, messages: history.length } }]);
        return toSession(row);
      });
    },
  };
}
