import { parseJson, toJson } from '../../core/json.ts';
import type { ScheduleClaim, ScheduleState, ScheduleStore, ScheduleSync } from '../schedules.ts';
import type { AuditEntry } from '../audit.ts';
import { insertAudit } from './audit-sql.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor } from './executor.ts';

/** Portable SQL (`?` placeholders, no dialect functions): the same on SQLite and PostgreSQL. */

interface ScheduleRow {
  id: string;
  spec: string;
  next_fire_at: number | string | null;
  last_fire_at: number | string | null;
  fires: number | string;
  claim_id: string | null;
  claimed_at: number | string | null;
  claimed_fires: string | null;
  created_at: number | string;
  updated_at: number | string;
}

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

function toState(r: ScheduleRow): ScheduleState {
  const claim: ScheduleClaim | null =
    r.claim_id === null ? null : { id: r.claim_id, claimedAt: Number(r.claimed_at), fires: (parseJson<number[]>(r.claimed_fires) ?? []).map(Number) };
  return {
    id: r.id,
    spec: r.spec,
    nextFireAt: num(r.next_fire_at),
    lastFireAt: num(r.last_fire_at),
    fires: Number(r.fires),
    claim,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

async function getIn(tx: SqlExecutor, id: string): Promise<ScheduleState | null> {
  const row = await tx.get<ScheduleRow>('SELECT * FROM schedules WHERE id = ?', [id]);
  return row ? toState(row) : null;
}

export function sqlScheduleStore(db: SqlBackend): ScheduleStore {
  return {
    async list(): Promise<ScheduleState[]> {
      const rows = await db.read.all<ScheduleRow>('SELECT * FROM schedules ORDER BY id');
      return rows.map(toState);
    },

    async get(id: string): Promise<ScheduleState | null> {
      return getIn(db.read, id);
    },

    async sync(s: ScheduleSync, now: number): Promise<{ state: ScheduleState; change: 'created' | 'changed' | 'unchanged' }> {
      return db.transaction(async (tx) => {
        const before = await getIn(tx, s.id);
        if (!before) {
          const inserted = await tx.run(
            `INSERT INTO schedules (id, spec, next_fire_at, fires, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (id) DO NOTHING`,
            [s.id, s.spec, s.nextFireAt, now, now],
          );
          if (inserted === 1) {
            await insertAudit(tx, now, [{ kind: 'schedule.created', actor: s.actor, data: { schedule: s.id, spec: s.describe, nextFireAt: iso(s.nextFireAt) } }]);
            return { state: (await getIn(tx, s.id))!, change: 'created' as const };
          }
          return { state: (await getIn(tx, s.id))!, change: 'unchanged' as const };
        }
        if (before.spec === s.spec) return { state: before, change: 'unchanged' as const };
        const changed = await tx.run('UPDATE schedules SET spec = ?, next_fire_at = ?, updated_at = ? WHERE id = ? AND spec = ?', [s.spec, s.nextFireAt, now, s.id, before.spec]);
        if (changed === 1) {
          await insertAudit(tx, now, [
            {
              kind: 'schedule.changed',
              actor: s.actor,
              data: {
                schedule: s.id,
                spec: s.describe,
                nextFireAt: iso(s.nextFireAt),
                previousNextFireAt: iso(before.nextFireAt),
                // Fires the old spec had due and did not make are not made under the new one.
                ...(before.nextFireAt !== null && before.nextFireAt <= now ? { droppedDueFiresFrom: iso(before.nextFireAt) } : {}),
              },
            },
          ]);
          return { state: (await getIn(tx, s.id))!, change: 'changed' as const };
        }
        return { state: (await getIn(tx, s.id))!, change: 'unchanged' as const };
      });
    },

    async claim(
      c: { id: string; expectNextFireAt: number; nextFireAt: number | null; claim: ScheduleClaim | null; audit: AuditEntry[] },
      now: number,
    ): Promise<ScheduleState | null> {
      return db.transaction(async (tx) => {
        const changed = await tx.run(
          `UPDATE schedules SET next_fire_at = ?, claim_id = ?, claimed_at = ?, claimed_fires = ?, updated_at = ?
           WHERE id = ? AND next_fire_at = ? AND claim_id IS NULL`,
          [c.nextFireAt, c.claim?.id ?? null, c.claim?.claimedAt ?? null, c.claim ? toJson(c.claim.fires) : null, now, c.id, c.expectNextFireAt],
        );
        if (changed !== 1) return null;
        await insertAudit(tx, now, c.audit);
        return getIn(tx, c.id);
      });
    },

    async complete(c: { id: string; claimId: string; fired: number; lastFireAt: number | null; audit: AuditEntry[] }, now: number): Promise<boolean> {
      return db.transaction(async (tx) => {
        const changed = await tx.run(
          `UPDATE schedules SET claim_id = NULL, claimed_at = NULL, claimed_fires = NULL, fires = fires + ?,
             last_fire_at = CASE WHEN last_fire_at IS NULL OR last_fire_at < ? THEN ? ELSE last_fire_at END, updated_at = ?
           WHERE id = ? AND claim_id = ?`,
          [c.fired, c.lastFireAt, c.lastFireAt, now, c.id, c.claimId],
        );
        if (changed !== 1) return false;
        await insertAudit(tx, now, c.audit);
        return true;
      });
    },
  };
}

function iso(t: number | null): string | null {
  return t === null ? null : new Date(t).toISOString();
}
