import { parseJson, toJson } from '../../core/json.ts';
import type { ErrorInfo, Json } from '../../core/types.ts';
import type { ActivityQuery, HeartbeatPatch, RunEffects, ScheduleClaim, ScheduleState, ScheduleStore, ScheduleSync } from '../schedules.ts';
import type { AuditEntry } from '../audit.ts';
import { insertAudit } from './audit-sql.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor } from './executor.ts';
import { grantCondition } from './memory-sql.ts';
import { placeholders } from './where.ts';

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
  hb_since: number | string | null;
  hb_run: string | null;
  hb_noops: number | string;
  hb_identical: number | string;
  hb_digest: string | null;
  hb_skipped: number | string;
  hb_skipped_at: number | string | null;
  paused_at: number | string | null;
  pause_reason: string | null;
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
    heartbeat: {
      since: num(r.hb_since),
      run: r.hb_run,
      noops: Number(r.hb_noops),
      identical: Number(r.hb_identical),
      digest: r.hb_digest,
      skipped: Number(r.hb_skipped),
      skippedAt: num(r.hb_skipped_at),
      paused: r.paused_at === null ? null : { at: Number(r.paused_at), reason: r.pause_reason ?? '' },
    },
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
      c: { id: string; expectNextFireAt: number; nextFireAt: number | null; claim: ScheduleClaim | null; audit: AuditEntry[]; heartbeat?: HeartbeatPatch },
      now: number,
    ): Promise<ScheduleState | null> {
      return db.transaction(async (tx) => {
        const hb = c.heartbeat ? heartbeatSet(c.heartbeat) : { sql: '', params: [] };
        const changed = await tx.run(
          `UPDATE schedules SET next_fire_at = ?, claim_id = ?, claimed_at = ?, claimed_fires = ?, updated_at = ?${hb.sql}
           WHERE id = ? AND next_fire_at = ? AND claim_id IS NULL AND paused_at IS NULL`,
          [c.nextFireAt, c.claim?.id ?? null, c.claim?.claimedAt ?? null, c.claim ? toJson(c.claim.fires) : null, now, ...hb.params, c.id, c.expectNextFireAt],
        );
        if (changed !== 1) return null;
        await insertAudit(tx, now, c.audit);
        return getIn(tx, c.id);
      });
    },

    async complete(c: { id: string; claimId: string; fired: number; lastFireAt: number | null; audit: AuditEntry[]; heartbeatRun?: string | null }, now: number): Promise<boolean> {
      return db.transaction(async (tx) => {
        const run = c.heartbeatRun === undefined ? { sql: '', params: [] } : { sql: ', hb_run = ?', params: [c.heartbeatRun] };
        const changed = await tx.run(
          `UPDATE schedules SET claim_id = NULL, claimed_at = NULL, claimed_fires = NULL, fires = fires + ?,
             last_fire_at = CASE WHEN last_fire_at IS NULL OR last_fire_at < ? THEN ? ELSE last_fire_at END, updated_at = ?${run.sql}
           WHERE id = ? AND claim_id = ?`,
          [c.fired, c.lastFireAt, c.lastFireAt, now, ...run.params, c.id, c.claimId],
        );
        if (changed !== 1) return false;
        await insertAudit(tx, now, c.audit);
        return true;
      });
    },

    async activity(q: ActivityQuery): Promise<boolean> {
      // Cheapest first; each stops at the first row.
      if (q.channels.length > 0) {
        const hit = await db.read.get(
          `SELECT 1 AS hit FROM envelopes WHERE received_at >= ? AND channel IN (${placeholders(q.channels.length)}) AND NOT (channel = 'cron' AND peer_id = ?) LIMIT 1`,
          [q.since, ...q.channels, q.schedule],
        );
        if (hit) return true;
      }
      if (q.agents.length > 0) {
        const hit = await db.read.get(
          `SELECT 1 AS hit FROM runs WHERE created_at >= ? AND agent IN (${placeholders(q.agents.length)}) AND (origin IS NULL OR origin <> ?) LIMIT 1`,
          [q.since, ...q.agents, q.origin],
        );
        if (hit) return true;
      }
      if (q.scopes.length > 0) {
        const scopes = grantCondition(q.scopes, 'v.scope');
        const hit = await db.read.get(
          `SELECT 1 AS hit FROM memory_versions v LEFT JOIN runs r ON r.id = v.written_run
            WHERE v.tenant = ? AND v.valid_from >= ? AND ${scopes.sql} AND (r.origin IS NULL OR r.origin <> ?) LIMIT 1`,
          [q.tenant, q.since, ...scopes.params, q.origin],
        );
        if (hit) return true;
      }
      return false;
    },

    async runEffects(runId: string): Promise<RunEffects | null> {
      // One round trip: the run and its two counts.
      const run = await db.read.get<{ state: string; output: string | null; error: string | null; effects: number | string; tasks: number | string }>(
        `SELECT r.state, r.output, r.error, (SELECT COUNT(*) FROM effects e WHERE e.run_id = r.id) AS effects, (SELECT COUNT(*) FROM tasks t WHERE t.run_id = r.id) AS tasks
           FROM runs r WHERE r.id = ?`,
        [runId],
      );
      if (!run) return null;
      return { state: run.state, output: parseJson<Json>(run.output), error: parseJson<ErrorInfo>(run.error), effects: Number(run.effects), tasks: Number(run.tasks) };
    },

    async resume(c: { id: string; nextFireAt: number | null; audit: AuditEntry[] }, now: number): Promise<boolean> {
      return db.transaction(async (tx) => {
        // The watermark moves to now: what happened while paused does not fire it at once.
        const changed = await tx.run(
          `UPDATE schedules SET paused_at = NULL, pause_reason = NULL, hb_noops = 0, hb_identical = 0, hb_digest = NULL, hb_since = ?, next_fire_at = ?, updated_at = ?
           WHERE id = ? AND paused_at IS NOT NULL AND claim_id IS NULL`,
          [now, c.nextFireAt, now, c.id],
        );
        if (changed !== 1) return false;
        await insertAudit(tx, now, c.audit);
        return true;
      });
    },
  };
}

/** The SET clauses of a heartbeat's fire. */
function heartbeatSet(p: HeartbeatPatch): { sql: string; params: Array<string | number | null> } {
  let sql = ', hb_since = ?, hb_run = ?, hb_noops = ?, hb_identical = ?, hb_digest = ?';
  const params: Array<string | number | null> = [p.since, p.run, p.noops, p.identical, p.digest];
  if (p.skippedAt !== undefined) {
    sql += ', hb_skipped = hb_skipped + 1, hb_skipped_at = ?';
    params.push(p.skippedAt);
  }
  if (p.pause !== undefined) {
    sql += ', paused_at = ?, pause_reason = ?';
    params.push(p.since, p.pause);
  }
  return { sql, params };
}

function iso(t: number | null): string | null {
  return t === null ? null : new Date(t).toISOString();
}
