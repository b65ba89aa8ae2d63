import type { StoreHealth } from '../store.ts';
import type { SqlExecutor } from './executor.ts';

/**
 * Read-only counts for `spine doctor`, in portable SQL. Each is one indexed scan or
 * GROUP BY; they are separate reads, so on a busy store the numbers are each exact
 * but not one snapshot.
 */
export async function storeHealth(db: SqlExecutor, now: number, aliveSince: number): Promise<StoreHealth> {
  const byState = async (table: 'tasks' | 'runs') => {
    const rows = await db.all<{ state: string; n: number | string }>(`SELECT state, COUNT(*) AS n FROM ${table} GROUP BY state ORDER BY state`);
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  };
  const num = (v: number | string | null | undefined): number | null => (v === null || v === undefined ? null : Number(v));
  const stuck = await db.get<{ n: number | string; oldest: number | string | null }>(
    `SELECT COUNT(*) AS n, MIN(lease_expires_at) AS oldest FROM tasks WHERE state IN ('leased', 'running') AND lease_expires_at < ?`,
    [now],
  );
  const stuckIds = await db.all<{ id: string }>(
    `SELECT id FROM tasks WHERE state IN ('leased', 'running') AND lease_expires_at < ? ORDER BY lease_expires_at, id LIMIT 10`,
    [now],
  );
  const ready = await db.get<{ oldest: number | string | null }>(`SELECT MIN(run_at) AS oldest FROM tasks WHERE state IN ('queued', 'retry-scheduled') AND run_at <= ?`, [now]);
  const approvals = await db.get<{ n: number | string }>(`SELECT COUNT(*) AS n FROM approvals WHERE state = 'pending'`);
  const outbox = await db.all<{ state: string; n: number | string; oldest: number | string | null }>(
    `SELECT state, COUNT(*) AS n, MIN(next_attempt_at) AS oldest FROM outbox WHERE state IN ('pending', 'dead') GROUP BY state`,
  );
  const workers = await db.get<{ n: number | string }>('SELECT COUNT(*) AS n FROM workers WHERE stopped_at IS NULL AND heartbeat_at >= ?', [aliveSince]);
  const pending = outbox.find((r) => r.state === 'pending');
  return {
    tasksByState: await byState('tasks'),
    runsByState: await byState('runs'),
    stuckLeases: { count: Number(stuck?.n ?? 0), oldestExpiredAt: num(stuck?.oldest), taskIds: stuckIds.map((r) => r.id) },
    oldestReadyAt: num(ready?.oldest),
    pendingApprovals: Number(approvals?.n ?? 0),
    outbox: { pending: Number(pending?.n ?? 0), dead: Number(outbox.find((r) => r.state === 'dead')?.n ?? 0), oldestDueAt: num(pending?.oldest) },
    workersAlive: Number(workers?.n ?? 0),
  };
}

/**
 * The write that proves the store can commit now (readiness): one row upserted, in a
 * transaction of its own. Disk full, a read-only database, an I/O error or a lost
 * connection make it fail; the backend turns that into StoreUnavailableError.
 */
export async function writeProbe(tx: SqlExecutor, now: number): Promise<void> {
  await tx.run('INSERT INTO store_probe (id, written_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at', [now]);
}
