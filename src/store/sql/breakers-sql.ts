import type { BreakerState } from '../../core/states.ts';
import type { BreakerChange, BreakerRecord, BreakerStore } from '../breakers.ts';
import { insertAudit } from './audit-sql.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor } from './executor.ts';

interface BreakerRow {
  key: string;
  state: string;
  failures: number | string;
  calls: number | string;
  window_start: number | string;
  retry_at: number | string | null;
  probe_owner: string | null;
  probe_until: number | string | null;
  last_error: string | null;
  changed_at: number | string;
}

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

function toRecord(r: BreakerRow): BreakerRecord {
  return {
    key: r.key,
    state: r.state as BreakerState,
    failures: Number(r.failures),
    calls: Number(r.calls),
    windowStart: Number(r.window_start),
    retryAt: num(r.retry_at),
    probeOwner: r.probe_owner,
    probeUntil: num(r.probe_until),
    lastError: r.last_error,
    changedAt: Number(r.changed_at),
  };
}

async function lockedRow(tx: SqlExecutor, key: string): Promise<BreakerRecord | null> {
  // A no-op UPDATE takes the row lock on PostgreSQL (SQLite's writer lock covers it), so two workers' changes serialise.
  await tx.run('UPDATE breakers SET changed_at = changed_at WHERE key = ?', [key]);
  const row = await tx.get<BreakerRow>('SELECT * FROM breakers WHERE key = ?', [key]);
  return row ? toRecord(row) : null;
}

export function sqlBreakerStore(db: SqlBackend): BreakerStore {
  return {
    async list() {
      return (await db.read.all<BreakerRow>('SELECT * FROM breakers ORDER BY key')).map(toRecord);
    },
    async get(key) {
      const row = await db.read.get<BreakerRow>('SELECT * FROM breakers WHERE key = ?', [key]);
      return row ? toRecord(row) : null;
    },
    update(key: string, change: BreakerChange, now: number) {
      return db.transaction(async (tx) => {
        const cur = await lockedRow(tx, key);
        const applied = change(cur);
        if (!applied) return cur;
        const n = applied.next;
        const params = [n.state, n.failures, n.calls, n.windowStart, n.retryAt, n.probeOwner, n.probeUntil, n.lastError, n.changedAt];
        if (cur) {
          await tx.run('UPDATE breakers SET state = ?, failures = ?, calls = ?, window_start = ?, retry_at = ?, probe_owner = ?, probe_until = ?, last_error = ?, changed_at = ? WHERE key = ?', [...params, key]);
        } else {
          // Two workers creating the same breaker at once: the second one's insert is a no-op, and its change is lost (one failure, at most).
          await tx.run(
            'INSERT INTO breakers (state, failures, calls, window_start, retry_at, probe_owner, probe_until, last_error, changed_at, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING',
            [...params, key],
          );
        }
        if (applied.audit.length) await insertAudit(tx, now, applied.audit);
        return n;
      });
    },
  };
}
