import { parseJson, toJson } from '../../core/json.ts';
import type { AuditEntry, AuditEvent, AuditStore } from '../audit.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor, SqlParam } from './executor.ts';
import { insertVerdicts } from './verdicts-sql.ts';

/** Rows per multi-row audit INSERT; keeps the number of distinct statements small. */
const AUDIT_CHUNK = 32;

interface AuditRow {
  seq: number | string;
  at: number | string;
  kind: string;
  run_id: string | null;
  task_id: string | null;
  agent: string | null;
  actor: string | null;
  digest: string | null;
  data: string | null;
}

function toAuditEvent(r: AuditRow): AuditEvent {
  const ev: AuditEvent = {
    seq: Number(r.seq),
    at: Number(r.at),
    kind: r.kind,
    runId: r.run_id,
    taskId: r.task_id,
    agent: r.agent,
    actor: r.actor,
    digest: r.digest,
  };
  const data = parseJson(r.data);
  if (data !== null) ev.data = data;
  return ev;
}

/**
 * Appends audit rows with multi-row INSERTs (one round trip per chunk). Every write
 * of the store calls it in its own transaction, so an event exists exactly when the
 * change it records does.
 */
export async function insertAudit(tx: SqlExecutor, now: number, entries: readonly AuditEntry[]): Promise<void> {
  for (let i = 0; i < entries.length; i += AUDIT_CHUNK) {
    const chunk = entries.slice(i, i + AUDIT_CHUNK);
    const params: SqlParam[] = [];
    for (const e of chunk) {
      params.push(now, e.kind, e.runId ?? null, e.taskId ?? null, e.agent ?? null, e.actor ?? null, e.digest ?? null, e.data === undefined ? null : toJson(e.data));
    }
    await tx.run(
      `INSERT INTO audit_events (at, kind, run_id, task_id, agent, actor, digest, data) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
      params,
    );
  }
  // A gate's verdict is also a queryable record, in the same transaction as its event.
  await insertVerdicts(tx, now, entries);
}

export function sqlAuditStore(db: SqlBackend): AuditStore {
  return {
    async append(entries: AuditEntry[], now: number): Promise<void> {
      await db.transaction((tx) => insertAudit(tx, now, entries));
    },

    async list(filter: { runId?: string; afterSeq?: number; limit: number }): Promise<AuditEvent[]> {
      const rows = filter.runId
        ? await db.read.all<AuditRow>('SELECT * FROM audit_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?', [
            filter.runId,
            filter.afterSeq ?? 0,
            filter.limit,
          ])
        : await db.read.all<AuditRow>('SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?', [filter.afterSeq ?? 0, filter.limit]);
      return rows.map(toAuditEvent);
    },

    async latestSeq(): Promise<number> {
      const row = await db.read.get<{ seq: number | string | null }>('SELECT MAX(seq) AS seq FROM audit_events');
      return Number(row?.seq ?? 0);
    },
  };
}
