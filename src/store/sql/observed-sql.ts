import type { ObservedState, ObservedStore } from '../observed.ts';
import type { SqlBackend } from './backend.ts';

const TWO_DAYS_MS = 2 * 24 * 3600_000;
const SPEND_ROWS = 200;

type N = number | string | null;
const num = (v: N | undefined): number => Number(v ?? 0);

/** The live view's read: separate indexed scans and GROUP BYs, each exact, not one snapshot. */
export function sqlObservedStore(db: SqlBackend): ObservedStore {
  return {
    async snapshot(now: number): Promise<ObservedState> {
      const r = db.read;
      const tasks = await r.all<{ agent: string; state: string; n: N }>(
        `SELECT agent, state, COUNT(*) AS n FROM tasks WHERE state NOT IN ('succeeded', 'failed', 'dead', 'cancelled') GROUP BY agent, state`,
      );
      const approvals = await r.get<{ n: N; oldest: N }>(`SELECT COUNT(*) AS n, MIN(requested_at) AS oldest FROM approvals WHERE state = 'pending'`);
      const budgets = await r.all<{ key: string; sm: N; rm: N; st: N; rt: N; u: N }>(
        `SELECT key, spent_micros AS sm, reserved_micros AS rm, spent_tokens AS st, reserved_tokens AS rt, updated_at AS u FROM budgets WHERE updated_at >= ? ORDER BY key`,
        [now - TWO_DAYS_MS],
      );
      const spend = await r.all<{ run_id: string; agent: string; rm: N; sm: N; st: N }>(
        `SELECT r.run_id, t.agent,
                SUM(CASE WHEN r.state = 'reserved' THEN r.micros ELSE 0 END) AS rm,
                SUM(COALESCE(r.settled_micros, 0)) AS sm,
                SUM(COALESCE(r.settled_tokens, 0)) AS st
           FROM reservations r JOIN tasks t ON t.id = r.task_id
          WHERE r.created_at >= ?
          GROUP BY r.run_id, t.agent
          ORDER BY MAX(r.created_at) DESC
          LIMIT ${SPEND_ROWS}`,
        [now - TWO_DAYS_MS],
      );
      const outbox = await r.all<{ channel: string; state: string; n: N }>(`SELECT channel, state, COUNT(*) AS n FROM outbox WHERE state <> 'sent' GROUP BY channel, state`);
      return {
        tasks: tasks.map((t) => ({ agent: t.agent, state: t.state, count: num(t.n) })),
        approvals: { pending: num(approvals?.n), oldestRequestedAt: approvals?.oldest === null || approvals?.oldest === undefined ? null : Number(approvals.oldest) },
        budgets: budgets.map((b) => ({ key: b.key, spentMicros: num(b.sm), reservedMicros: num(b.rm), spentTokens: num(b.st), reservedTokens: num(b.rt), updatedAt: num(b.u) })),
        spend: spend.map((s) => ({ runId: s.run_id, agent: s.agent, reservedMicros: num(s.rm), settledMicros: num(s.sm), settledTokens: num(s.st) })),
        outbox: outbox.map((o) => ({ channel: o.channel, state: o.state, count: num(o.n) })),
      };
    },
  };
}
