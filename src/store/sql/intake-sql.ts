import { parseJson, toJson } from '../../core/json.ts';
import type { Json, SessionMessage } from '../../core/types.ts';
import type { EnvelopeRecord, SessionInfo } from '../store.ts';
import type { SqlExecutor } from './executor.ts';
import { insertAudit } from './sql-store.ts';

/**
 * Envelopes, session lanes and session history, in portable SQL. A lane is held by
 * `sessions.active_run`, taken with a conditional UPDATE, so two processes
 * accepting messages for one session at once still queue them strictly in order.
 */

export interface EnvelopeRow {
  id: string;
  idempotency_key: string;
  channel: string;
  account: string;
  peer_kind: string;
  peer_id: string;
  parent_peer: string | null;
  sender: string | null;
  thread: string | null;
  text: string;
  data: string | null;
  reply_to: string | null;
  state: string;
  route: string | null;
  error: string | null;
  run_id: string | null;
  session_key: string | null;
  received_at: number | string;
}

export function toEnvelope(r: EnvelopeRow): EnvelopeRecord {
  return {
    id: r.id,
    idempotencyKey: r.idempotency_key,
    channel: r.channel,
    account: r.account,
    peer: { kind: r.peer_kind as 'dm' | 'group' | 'channel', id: r.peer_id },
    parentPeer: r.parent_peer,
    sender: parseJson(r.sender),
    thread: r.thread,
    text: r.text,
    data: parseJson(r.data),
    replyTo: parseJson(r.reply_to),
    state: r.state as EnvelopeRecord['state'],
    route: parseJson(r.route),
    error: parseJson(r.error),
    runId: r.run_id,
    sessionKey: r.session_key,
    receivedAt: Number(r.received_at),
  };
}

export interface SessionRow {
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

export function toSession(r: SessionRow): SessionInfo {
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
 * Puts a new run into its session's lane: creates the session if needed, starts a
 * new epoch if the reset policy says so, and takes the lane if it is free.
 * Returns the run's place in the lane and whether it may start now.
 */
export async function enterLane(
  tx: SqlExecutor,
  s: { key: string; agent: string; resetDue: (lastActivity: number) => boolean },
  runId: string,
  now: number,
): Promise<{ seq: number; epoch: number; active: boolean }> {
  await tx.run('INSERT INTO sessions (key, agent, created_at, last_activity_at) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING', [s.key, s.agent, now, now]);
  const row = await tx.get<SessionRow>('SELECT * FROM sessions WHERE key = ?', [s.key]);
  const reset = row !== undefined && Number(row.next_seq) > 0 && s.resetDue(Number(row.last_activity_at));
  const seqRow = await tx.get<{ next_seq: number | string; epoch: number | string }>(
    `UPDATE sessions SET next_seq = next_seq + 1, epoch = epoch + ?, reset_at = CASE WHEN ? = 1 THEN ? ELSE reset_at END, last_activity_at = ?
     WHERE key = ? RETURNING next_seq, epoch`,
    [reset ? 1 : 0, reset ? 1 : 0, now, now, s.key],
  );
  if (reset) await insertAudit(tx, now, [{ kind: 'session.reset', agent: s.agent, actor: 'reset-policy', data: { session: s.key } }]);
  const active = (await tx.run('UPDATE sessions SET active_run = ? WHERE key = ? AND active_run IS NULL', [runId, s.key])) === 1;
  return { seq: Number(seqRow!.next_seq), epoch: Number(seqRow!.epoch), active };
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

export async function resetSession(tx: SqlExecutor, key: string, actor: string, now: number): Promise<boolean> {
  const changed = await tx.run('UPDATE sessions SET epoch = epoch + 1, reset_at = ? WHERE key = ?', [now, key]);
  if (changed === 1) await insertAudit(tx, now, [{ kind: 'session.reset', actor, data: { session: key } }]);
  return changed === 1;
}

export async function insertEnvelopeRow(tx: SqlExecutor, row: Omit<EnvelopeRow, 'received_at'>, now: number): Promise<boolean> {
  const changed = await tx.run(
    `INSERT INTO envelopes (id, idempotency_key, channel, account, peer_kind, peer_id, parent_peer, sender, thread, text, data, reply_to, state, route, error, run_id, session_key, received_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`,
    [
      row.id,
      row.idempotency_key,
      row.channel,
      row.account,
      row.peer_kind,
      row.peer_id,
      row.parent_peer,
      row.sender,
      row.thread,
      row.text,
      row.data,
      row.reply_to,
      row.state,
      row.route,
      row.error,
      row.run_id,
      row.session_key,
      now,
    ],
  );
  return changed === 1;
}

export { toJson };
