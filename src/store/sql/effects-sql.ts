import { NotFoundError } from '../../core/errors.ts';
import { toJson } from '../../core/json.ts';
import type { ErrorInfo, Json } from '../../core/types.ts';
import type { AuditEntry } from '../audit.ts';
import type { EffectRecord, EffectStart, Settlement } from '../store.ts';
import { insertAudit } from './audit-sql.ts';
import type { SqlExecutor } from './executor.ts';
import { settleReservation } from './limits-sql.ts';
import { toEffect, type EffectRow } from './rows.ts';

/**
 * The effects ledger: one row per side effect, keyed by its place in the run. Begun
 * before the effect runs, completed with its outcome; the first recorded outcome is
 * the one that counts.
 */

/**
 * Records that an effect is about to run (started, attempts + 1). A record already
 * completed or failed comes back unchanged: the caller replays it.
 */
export async function beginEffect(tx: SqlExecutor, e: EffectStart, now: number): Promise<EffectRecord> {
  const row = await tx.get<EffectRow>(
    `INSERT INTO effects (key, run_id, task_id, turn, action, tool, input_digest, state, attempts, started_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, 'started', 1, ?)
     ON CONFLICT (key) DO UPDATE SET attempts = effects.attempts + 1, started_at = excluded.started_at WHERE effects.state = 'started'
     RETURNING *`,
    [e.key, e.runId, e.taskId, e.turn, e.action, e.tool, e.inputDigest, now],
  );
  if (!row) {
    // Already completed or failed (possibly by an earlier holder of the lease): replay it.
    const existing = await tx.get<EffectRow>('SELECT * FROM effects WHERE key = ?', [e.key]);
    if (!existing) throw new NotFoundError('effect', e.key);
    return toEffect(existing);
  }
  const attempts = Number(row.attempts);
  await insertAudit(tx, now, [
    { kind: attempts > 1 ? 'effect.restarted' : 'effect.started', runId: e.runId, taskId: e.taskId, data: { key: e.key, tool: e.tool, attempts } },
  ]);
  return toEffect(row);
}

/** Records an effect's outcome and settles its cost reservation; if another holder recorded it first, that outcome stands. */
export async function completeEffect(
  tx: SqlExecutor,
  key: string,
  outcome: { result: Json } | { error: ErrorInfo },
  now: number,
  audit: AuditEntry[],
  settle?: Settlement,
): Promise<EffectRecord> {
  const ok = 'result' in outcome;
  const row = await tx.get<EffectRow>(`UPDATE effects SET state = ?, result = ?, error = ?, completed_at = ? WHERE key = ? AND state = 'started' RETURNING *`, [
    ok ? 'completed' : 'failed',
    ok ? toJson(outcome.result) : null,
    ok ? null : toJson(outcome.error),
    now,
    key,
  ]);
  if (settle) await settleReservation(tx, settle, now);
  if (!row) {
    // Already recorded by an earlier holder of the lease: keep the first outcome, the one that counts.
    const existing = await tx.get<EffectRow>('SELECT * FROM effects WHERE key = ?', [key]);
    if (!existing) throw new NotFoundError('effect', key);
    await insertAudit(tx, now, [{ kind: 'effect.duplicate-outcome', runId: existing.run_id, taskId: existing.task_id, data: { key } }]);
    return toEffect(existing);
  }
  await insertAudit(tx, now, audit);
  return toEffect(row);
}

export async function listEffects(db: SqlExecutor, filter: { runId?: string; taskId?: string }): Promise<EffectRecord[]> {
  const rows = filter.taskId
    ? await db.all<EffectRow>('SELECT * FROM effects WHERE task_id = ? ORDER BY turn, action', [filter.taskId])
    : filter.runId
      ? await db.all<EffectRow>('SELECT * FROM effects WHERE run_id = ? ORDER BY task_id, turn, action', [filter.runId])
      : await db.all<EffectRow>('SELECT * FROM effects ORDER BY started_at, key');
  return rows.map(toEffect);
}
