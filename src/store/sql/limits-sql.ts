import { LeaseLostError } from '../../core/errors.ts';
import { parseJson, toJson } from '../../core/json.ts';
import type { RunSpend } from '../../core/usage.ts';
import type { BudgetUsage, LimitAcquire, LimitResult, LimitStore, Settlement } from '../store.ts';
import { insertAudit } from './audit-sql.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor, SqlParam } from './executor.ts';
import { placeholders } from './where.ts';

/**
 * The shared state of the policy engine's limits: token buckets and spend budgets
 * with reservations. Written with conditional UPDATEs (no row locks), so any number of
 * workers on one database can race and never overshoot a limit. Which limits apply,
 * and how much a crossing costs, is policy's decision; the store applies it atomically.
 */

/** Thrown inside the transaction so that tokens and reservations already taken roll back. */
class LimitRefused extends Error {
  readonly result: LimitResult;
  constructor(result: LimitResult) {
    super('limit refused');
    this.result = result;
  }
}

/** Takes one token from every bucket and reserves spend on every budget — or throws LimitRefused, changing nothing. */
async function acquireLimits(tx: SqlExecutor, req: LimitAcquire, now: number): Promise<LimitResult> {
  for (const take of req.takes) {
    const got = await takeToken(tx, take.key, take.capacity, take.refillPerMs, now);
    if (got !== true) throw new LimitRefused({ ok: false, kind: 'rate', ruleId: take.ruleId, key: take.key, retryAt: got, onExceeded: take.onExceeded });
  }
  if (req.budgets.length > 0) {
    // Reserve only under a lease still held: the row lock also orders this after (or before) a reclaim.
    if (req.holder !== undefined) {
      const held = await tx.run(`UPDATE tasks SET updated_at = updated_at WHERE id = ? AND lease_owner = ? AND state IN ('leased', 'running')`, [req.taskId, req.holder]);
      if (held !== 1) throw new LeaseLostError(req.taskId);
    }
    for (const b of req.budgets) {
      await tx.run('INSERT INTO budgets (key, updated_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING', [b.key, now]);
      const conds: string[] = [];
      const params: SqlParam[] = [req.micros, req.tokens, now, b.key];
      if (b.maxMicros !== null) {
        conds.push('spent_micros + reserved_micros + ? <= ?');
        params.push(req.micros, b.maxMicros);
      }
      if (b.maxTokens !== null) {
        conds.push('spent_tokens + reserved_tokens + ? <= ?');
        params.push(req.tokens, b.maxTokens);
      }
      const changed = await tx.run(
        `UPDATE budgets SET reserved_micros = reserved_micros + ?, reserved_tokens = reserved_tokens + ?, updated_at = ?
         WHERE key = ?${conds.length ? ' AND ' + conds.join(' AND ') : ''}`,
        params,
      );
      if (changed !== 1) throw new LimitRefused({ ok: false, kind: 'cost', ruleId: b.ruleId, key: b.key });
    }
    await tx.run(
      `INSERT INTO reservations (id, run_id, task_id, keys, micros, tokens, state, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 'reserved', ?, ?)`,
      [req.reservationId, req.runId, req.taskId, toJson(req.budgets.map((b) => b.key)), req.micros, req.tokens, now, req.expiresAt],
    );
  }
  // What the taking records (a mesh call's shadow record) commits with it, or not at all.
  if (req.audit?.length) await insertAudit(tx, now, req.audit);
  return { ok: true, reservationId: req.budgets.length > 0 ? req.reservationId : null };
}

/** Refills by elapsed time, then takes one token; returns true, or when one will be available. */
async function takeToken(tx: SqlExecutor, key: string, capacity: number, refillPerMs: number, now: number): Promise<true | number> {
  for (let i = 0; i < 20; i++) {
    const row = await tx.get<{ tokens: number | string; updated_at: number | string }>('SELECT tokens, updated_at FROM rate_buckets WHERE key = ?', [key]);
    if (!row) {
      const inserted = await tx.run('INSERT INTO rate_buckets (key, tokens, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING', [key, capacity - 1, now]);
      if (inserted === 1) return true;
      continue;
    }
    const last = Number(row.updated_at);
    const level = Math.min(capacity, Number(row.tokens) + Math.max(0, now - last) * refillPerMs);
    if (level < 1) return now + Math.ceil((1 - level) / refillPerMs);
    // Optimistic: only if nobody else moved the bucket since we read it.
    const changed = await tx.run('UPDATE rate_buckets SET tokens = ?, updated_at = ? WHERE key = ? AND updated_at = ? AND tokens = ?', [
      level - 1,
      Math.max(now, last),
      key,
      row.updated_at,
      row.tokens,
    ]);
    if (changed === 1) return true;
  }
  throw new Error(`rate bucket ${key} is too contended`);
}

/**
 * A raised ceiling is kept in the budgets table beside its budget, under `ceiling:<key>`,
 * in the spent column: one row per raised budget, only ever raised, never lowered.
 */
const raisedKey = (budgetKey: string) => `ceiling:${budgetKey}`;

export async function raiseCeiling(tx: SqlExecutor, budgetKey: string, maxMicros: number, now: number): Promise<number | null> {
  const before = await tx.get<{ spent_micros: number | string }>('SELECT spent_micros FROM budgets WHERE key = ?', [raisedKey(budgetKey)]);
  await tx.run(
    `INSERT INTO budgets (key, spent_micros, updated_at) VALUES (?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET spent_micros = CASE WHEN budgets.spent_micros > excluded.spent_micros THEN budgets.spent_micros ELSE excluded.spent_micros END, updated_at = excluded.updated_at`,
    [raisedKey(budgetKey), maxMicros, now],
  );
  return before ? Number(before.spent_micros) : null;
}

/** Moves a reservation's estimate from reserved to spent (actual amounts). Idempotent. */
export async function settleReservation(tx: SqlExecutor, s: Settlement, now: number): Promise<boolean> {
  const r = await tx.get<{ keys: string; micros: number | string; tokens: number | string; run_id: string; task_id: string }>(
    `UPDATE reservations SET state = 'settled', settled_micros = ?, settled_tokens = ?, finished_at = ? WHERE id = ? AND state = 'reserved'
     RETURNING keys, micros, tokens, run_id, task_id`,
    [s.micros, s.tokens, now, s.reservationId],
  );
  if (!r) return false;
  for (const key of parseJson<string[]>(r.keys) ?? []) {
    await tx.run(
      `UPDATE budgets SET reserved_micros = reserved_micros - ?, reserved_tokens = reserved_tokens - ?,
         spent_micros = spent_micros + ?, spent_tokens = spent_tokens + ?, updated_at = ? WHERE key = ?`,
      [Number(r.micros), Number(r.tokens), s.micros, s.tokens, now, key],
    );
  }
  await insertAudit(tx, now, [
    { kind: 'cost.settled', runId: r.run_id, taskId: r.task_id, data: { reservation: s.reservationId, micros: s.micros, tokens: s.tokens, keys: parseJson<string[]>(r.keys) ?? [] } },
  ]);
  return true;
}

/**
 * Releases the open reservations of a task whose worker died (its lease was
 * reclaimed). Every recorded effect settled its reservation in the same commit, so
 * what is still reserved belongs to an effect that will run again under a new one.
 */
export async function releaseTaskReservations(tx: SqlExecutor, taskId: string, now: number, reason = 'holder died'): Promise<number> {
  return releaseWhere(tx, 'task_id = ?', [taskId], now, reason);
}

async function releaseWhere(tx: SqlExecutor, cond: string, params: Array<string | number>, now: number, reason: string): Promise<number> {
  const rows = await tx.all<{ id: string; keys: string; micros: number | string; tokens: number | string; run_id: string; task_id: string }>(
    `UPDATE reservations SET state = 'released', finished_at = ? WHERE state = 'reserved' AND ${cond} RETURNING id, keys, micros, tokens, run_id, task_id`,
    [now, ...params],
  );
  for (const r of rows) {
    for (const key of parseJson<string[]>(r.keys) ?? []) {
      await tx.run('UPDATE budgets SET reserved_micros = reserved_micros - ?, reserved_tokens = reserved_tokens - ?, updated_at = ? WHERE key = ?', [
        Number(r.micros),
        Number(r.tokens),
        now,
        key,
      ]);
    }
  }
  await insertAudit(
    tx,
    now,
    rows.map((r) => ({ kind: 'cost.released', runId: r.run_id, taskId: r.task_id, actor: 'reaper', data: { reservation: r.id, reason } })),
  );
  return rows.length;
}

export function sqlLimitStore(db: SqlBackend): LimitStore {
  return {
    async acquire(req: LimitAcquire, now: number): Promise<LimitResult> {
      try {
        return await db.transaction((tx) => acquireLimits(tx, req, now));
      } catch (err) {
        if (err instanceof LimitRefused) return err.result;
        throw err;
      }
    },

    async settle(settlement: Settlement, now: number): Promise<void> {
      await db.transaction((tx) => settleReservation(tx, settlement, now));
    },

    /** Releases reservations whose holder died before settling them. */
    async releaseExpired(now: number): Promise<number> {
      return db.transaction((tx) => releaseWhere(tx, 'expires_at < ?', [now], now, 'expired'));
    },

    async raisedCeiling(key: string): Promise<number | null> {
      const row = await db.read.get<{ spent_micros: number | string }>('SELECT spent_micros FROM budgets WHERE key = ?', [raisedKey(key)]);
      return row ? Number(row.spent_micros) : null;
    },

    async usage(keys: string[]): Promise<BudgetUsage[]> {
      if (keys.length === 0) return [];
      const rows = await db.read.all<{
        key: string;
        spent_micros: number | string;
        reserved_micros: number | string;
        spent_tokens: number | string;
        reserved_tokens: number | string;
      }>(`SELECT * FROM budgets WHERE key IN (${placeholders(keys.length)}) ORDER BY key`, keys);
      return rows.map((r) => ({
        key: r.key,
        spentMicros: Number(r.spent_micros),
        reservedMicros: Number(r.reserved_micros),
        spentTokens: Number(r.spent_tokens),
        reservedTokens: Number(r.reserved_tokens),
      }));
    },

    async runSpend(runId: string): Promise<RunSpend> {
      const rows = await db.read.all<{ state: string; micros: number | string | null; tokens: number | string | null; settled_micros: number | string | null; settled_tokens: number | string | null }>(
        `SELECT state, SUM(micros) AS micros, SUM(tokens) AS tokens, SUM(settled_micros) AS settled_micros, SUM(settled_tokens) AS settled_tokens
           FROM reservations WHERE run_id = ? AND state IN ('reserved', 'settled') GROUP BY state`,
        [runId],
      );
      const held = rows.find((r) => r.state === 'reserved');
      const settled = rows.find((r) => r.state === 'settled');
      return {
        reservedUsd: Number(held?.micros ?? 0) / 1e6,
        reservedTokens: Number(held?.tokens ?? 0),
        settledUsd: Number(settled?.settled_micros ?? 0) / 1e6,
        settledTokens: Number(settled?.settled_tokens ?? 0),
      };
    },
  };
}
