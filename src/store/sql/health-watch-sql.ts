import type { NewApproval, ProbeStore, StuckCandidate, StuckStore } from '../store.ts';
import { insertApproval } from './approvals-sql.ts';
import { insertAudit } from './audit-sql.ts';
import type { SqlBackend } from './backend.ts';

interface CandidateRow {
  id: string;
  run_id: string;
  agent: string;
  since: number | string;
}

const candidate = (r: CandidateRow): StuckCandidate => ({ id: r.id, runId: r.run_id, agent: r.agent, since: Number(r.since) });

interface FindingRow {
  kind: string;
  subject: string;
  run_id: string;
  since: number | string;
  detail: string;
  action: string;
  approval_id: string | null;
  found_at: number | string;
}

interface ProbeRow {
  key: string;
  ok: number | string | null;
  checked_at: number | string | null;
  ms: number | string | null;
  detail: string | null;
  due_at: number | string;
}

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

export function sqlStuckStore(db: SqlBackend): StuckStore {
  return {
    async candidates(now, limit) {
      const leaseExpired = await db.read.all<CandidateRow>(
        `SELECT id, run_id, agent, lease_expires_at AS since FROM tasks WHERE state IN ('leased', 'running') AND lease_expires_at < ? ORDER BY lease_expires_at LIMIT ?`,
        [now, limit],
      );
      const joinOverdue = await db.read.all<CandidateRow>(
        `SELECT id, run_id, agent, join_deadline_at AS since FROM tasks WHERE state = 'waiting' AND join_deadline_at IS NOT NULL AND join_deadline_at <= ? ORDER BY join_deadline_at LIMIT ?`,
        [now, limit],
      );
      return { leaseExpired: leaseExpired.map(candidate), joinOverdue: joinOverdue.map(candidate) };
    },

    record(f, audit, approval: NewApproval | null, now) {
      return db.transaction(async (tx) => {
        // Claimed first: a second sweep (or another worker's) finds the row and records nothing.
        const inserted = await tx.run(
          `INSERT INTO stuck_findings (kind, subject, run_id, since, detail, action, found_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, subject) DO NOTHING`,
          [f.kind, f.subject, f.runId, f.since, f.detail, f.action, now],
        );
        if (inserted !== 1) return false;
        await insertAudit(tx, now, audit);
        if (approval) {
          const id = await insertApproval(tx, approval, now, audit[0]?.actor ?? 'health');
          await tx.run('UPDATE stuck_findings SET approval_id = ? WHERE kind = ? AND subject = ?', [id, f.kind, f.subject]);
        }
        return true;
      });
    },

    async list(limit) {
      const rows = await db.read.all<FindingRow>('SELECT * FROM stuck_findings ORDER BY found_at DESC, kind, subject LIMIT ?', [limit]);
      return rows.map((r) => ({ kind: r.kind, subject: r.subject, runId: r.run_id, since: Number(r.since), detail: r.detail, action: r.action, approvalId: r.approval_id, foundAt: Number(r.found_at) }));
    },
  };
}

export function sqlProbeStore(db: SqlBackend): ProbeStore {
  return {
    claim(key, owner, now, leaseMs) {
      return db.transaction(async (tx) => {
        await tx.run('INSERT INTO health_probes (key, lease_until, due_at) VALUES (?, 0, ?) ON CONFLICT (key) DO NOTHING', [key, now]);
        // One statement decides: due, and nobody else's lease still running.
        const won = await tx.run('UPDATE health_probes SET owner = ?, lease_until = ? WHERE key = ? AND due_at <= ? AND (owner IS NULL OR lease_until <= ?)', [owner, now + leaseMs, key, now, now]);
        return won === 1;
      });
    },

    async finish(key, owner, result, now, nextDueAt) {
      await db.transaction((tx) =>
        tx.run('UPDATE health_probes SET ok = ?, checked_at = ?, ms = ?, detail = ?, owner = NULL, lease_until = 0, due_at = ? WHERE key = ? AND owner = ?', [
          result.ok ? 1 : 0,
          now,
          Math.round(result.ms),
          result.detail.slice(0, 500),
          nextDueAt,
          key,
          owner,
        ]),
      );
    },

    async list() {
      const rows = await db.read.all<ProbeRow>('SELECT key, ok, checked_at, ms, detail, due_at FROM health_probes ORDER BY key');
      return rows.map((r) => ({ key: r.key, ok: r.ok === null ? null : Number(r.ok) === 1, checkedAt: num(r.checked_at), ms: num(r.ms), detail: r.detail, dueAt: Number(r.due_at) }));
    },
  };
}
