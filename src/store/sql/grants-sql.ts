import { NotFoundError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { GrantStore, StandingGrant } from '../store.ts';
import { insertAudit } from './audit-sql.ts';
import type { SqlBackend } from './backend.ts';
import { whereOf } from './where.ts';

/**
 * Standing grants as rows: created, revoked, listed. What a grant covers is policy's
 * to decide (it matches the action patterns); the store only filters by agent and time.
 */

interface StandingGrantRow {
  id: string;
  agent: string;
  action: string;
  granted_by: string;
  reason: string | null;
  created_at: number | string;
  expires_at: number | string;
  revoked_at: number | string | null;
}

function toStandingGrant(r: StandingGrantRow): StandingGrant {
  return {
    id: r.id,
    agent: r.agent,
    action: r.action,
    grantedBy: r.granted_by,
    reason: r.reason,
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  };
}

export function sqlGrantStore(db: SqlBackend): GrantStore {
  return {
    async grant(grant: { agent: string; action: string; durationMs: number; actor: string; reason?: string }, now: number): Promise<StandingGrant> {
      return db.transaction(async (tx) => {
        const row = await tx.get<StandingGrantRow>(
          `INSERT INTO standing_grants (id, agent, action, granted_by, reason, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
          [newId('grant'), grant.agent, grant.action, grant.actor, grant.reason ?? null, now, now + grant.durationMs],
        );
        await insertAudit(tx, now, [
          { kind: 'grant.standing', agent: grant.agent, actor: grant.actor, data: { grant: row!.id, action: grant.action, expiresAt: now + grant.durationMs, reason: grant.reason ?? null } },
        ]);
        return toStandingGrant(row!);
      });
    },

    async revoke(id: string, actor: string, now: number): Promise<void> {
      await db.transaction(async (tx) => {
        const row = await tx.get<StandingGrantRow>('UPDATE standing_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING *', [now, id]);
        if (!row) throw new NotFoundError('active standing grant', id);
        await insertAudit(tx, now, [{ kind: 'grant.revoked', agent: row.agent, actor, data: { grant: id, action: row.action } }]);
      });
    },

    async list(filter: { activeAt?: number; agent?: string }): Promise<StandingGrant[]> {
      const w = whereOf([
        ['agent = ?', filter.agent],
        ['revoked_at IS NULL AND expires_at > ?', filter.activeAt],
      ]);
      const rows = await db.read.all<StandingGrantRow>(`SELECT * FROM standing_grants ${w.sql} ORDER BY created_at, id`, w.params);
      return rows.map(toStandingGrant);
    },
  };
}
