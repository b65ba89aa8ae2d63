import { InvalidStateError, NotFoundError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { parseJson, toJson } from '../../core/json.ts';
import type { Json } from '../../core/types.ts';
import type { NewOutboxItem, OutboxItem, OutboxLease, OutboxStore } from '../outbox.ts';
import type { AuditEntry } from '../audit.ts';
import { insertAudit } from './audit-sql.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor } from './executor.ts';
import { whereOf } from './where.ts';

/**
 * The outbox in portable SQL. Leasing is the dialect's `leaseOutbox` statement: one
 * conditional UPDATE whose outer WHERE repeats the "free and due" test, so when two
 * processes pick the same row only the first changes it (SQLite serialises writers;
 * PostgreSQL also skips rows another leaser has locked, so racing leasers share the
 * due items instead of all picking the same first ones).
 */

export interface OutboxRow {
  id: string;
  idempotency_key: string;
  run_id: string | null;
  task_id: string | null;
  channel: string;
  account: string;
  target: string;
  payload: string;
  state: string;
  attempts: number | string;
  next_attempt_at: number | string;
  lease_owner: string | null;
  lease_expires_at: number | string | null;
  last_error: string | null;
  response: string | null;
  created_at: number | string;
  sent_at: number | string | null;
}

export function toOutboxItem(r: OutboxRow): OutboxItem {
  return {
    id: r.id,
    idempotencyKey: r.idempotency_key,
    runId: r.run_id,
    taskId: r.task_id,
    channel: r.channel,
    account: r.account,
    target: parseJson(r.target) ?? null,
    payload: parseJson(r.payload) ?? null,
    state: r.state as OutboxItem['state'],
    attempts: Number(r.attempts),
    nextAttemptAt: Number(r.next_attempt_at),
    lastError: parseJson(r.last_error),
    response: parseJson(r.response),
    leaseOwner: r.lease_owner,
    leaseExpiresAt: r.lease_expires_at === null ? null : Number(r.lease_expires_at),
    createdAt: Number(r.created_at),
    sentAt: r.sent_at === null ? null : Number(r.sent_at),
  };
}

/** Inserts an outbox item inside an open transaction (idempotent by key); audits `outbox.enqueued` when new. */
export async function enqueueIn(tx: SqlExecutor, item: NewOutboxItem, now: number): Promise<OutboxItem> {
  return (await insertOutbox(tx, item, now)).item;
}

export async function insertOutbox(tx: SqlExecutor, item: NewOutboxItem, now: number): Promise<{ item: OutboxItem; created: boolean }> {
  const id = newId('out');
  const created =
    (await tx.run(
      `INSERT INTO outbox (id, idempotency_key, run_id, task_id, channel, account, target, payload, state, next_attempt_at, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`,
      [id, item.idempotencyKey, item.runId, item.taskId, item.channel, item.account, toJson(item.target), toJson(item.payload), now, now],
    )) === 1;
  const row = await tx.get<OutboxRow>('SELECT * FROM outbox WHERE idempotency_key = ?', [item.idempotencyKey]);
  if (created) {
    await insertAudit(tx, now, [
      { kind: 'outbox.enqueued', runId: item.runId, taskId: item.taskId, data: { outbox: id, channel: item.channel, account: item.account, idempotencyKey: item.idempotencyKey } },
    ]);
  }
  return { item: toOutboxItem(row!), created };
}

export function sqlOutboxStore(db: SqlBackend): OutboxStore {
  return {
    async enqueue(item: NewOutboxItem, now: number): Promise<OutboxItem> {
      const out = await db.transaction((tx) => enqueueIn(tx, item, now));
      db.signalTasksReady();
      return out;
    },

    async list(filter: { state?: OutboxItem['state']; runId?: string; limit: number }): Promise<OutboxItem[]> {
      const w = whereOf([
        ['state = ?', filter.state],
        ['run_id = ?', filter.runId],
      ]);
      const rows = await db.read.all<OutboxRow>(`SELECT * FROM outbox ${w.sql} ORDER BY created_at, id LIMIT ?`, [...w.params, filter.limit]);
      return rows.map(toOutboxItem);
    },

    async get(id: string): Promise<OutboxItem | null> {
      const row = await db.read.get<OutboxRow>('SELECT * FROM outbox WHERE id = ?', [id]);
      return row ? toOutboxItem(row) : null;
    },

    async lease(req: { owner: string; limit: number; leaseMs: number; now: number }): Promise<OutboxItem[]> {
      if (req.limit <= 0) return [];
      const rows = await db.transaction((tx) =>
        tx.all<OutboxRow>(db.sql.leaseOutbox, [req.owner, req.now + req.leaseMs, req.now, req.now, req.limit, req.now]),
      );
      return rows.map(toOutboxItem).sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },

    async complete(lease: OutboxLease, response: Json | null, now: number, audit: AuditEntry[]): Promise<boolean> {
      return db.transaction(async (tx) => {
        const changed = await tx.run(
          `UPDATE outbox SET state = 'sent', sent_at = ?, response = ?, last_error = NULL, lease_owner = NULL, lease_expires_at = NULL
           WHERE id = ? AND state = 'pending' AND lease_owner = ? AND attempts = ?`,
          [now, toJson(response), lease.id, lease.owner, lease.attempt],
        );
        await insertAudit(tx, now, changed === 1 ? audit : [...audit, leaseLost(lease, audit)]);
        return changed === 1;
      });
    },

    async fail(lease: OutboxLease, failure: { error: Json; retryAt: number | null }, now: number, audit: AuditEntry[]): Promise<boolean> {
      return db.transaction(async (tx) => {
        const changed =
          failure.retryAt === null
            ? await tx.run(
                `UPDATE outbox SET state = 'dead', last_error = ?, lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = ? AND state = 'pending' AND lease_owner = ? AND attempts = ?`,
                [toJson(failure.error), lease.id, lease.owner, lease.attempt],
              )
            : await tx.run(
                `UPDATE outbox SET next_attempt_at = ?, last_error = ?, lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = ? AND state = 'pending' AND lease_owner = ? AND attempts = ?`,
                [failure.retryAt, toJson(failure.error), lease.id, lease.owner, lease.attempt],
              );
        await insertAudit(tx, now, changed === 1 ? audit : [...audit, leaseLost(lease, audit)]);
        return changed === 1;
      });
    },

    async nextDue(): Promise<number | null> {
      const row = await db.read.get<{ due: number | string | null }>(
        `SELECT MIN(CASE WHEN lease_expires_at IS NOT NULL AND lease_expires_at > next_attempt_at THEN lease_expires_at ELSE next_attempt_at END) AS due
         FROM outbox WHERE state = 'pending'`,
      );
      return row?.due === null || row?.due === undefined ? null : Number(row.due);
    },

    async requeue(id: string, actor: string, now: number): Promise<OutboxItem> {
      const item = await db.transaction(async (tx) => {
        const row = await tx.get<OutboxRow>(
          `UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND state = 'dead' RETURNING *`,
          [now, id],
        );
        if (!row) {
          const existing = await tx.get<OutboxRow>('SELECT state FROM outbox WHERE id = ?', [id]);
          if (!existing) throw new NotFoundError('outbox item', id);
          throw new InvalidStateError(`outbox item ${id} is ${existing.state}; only a dead item can be requeued`);
        }
        await insertAudit(tx, now, [{ kind: 'outbox.requeued', runId: row.run_id, taskId: row.task_id, actor, data: { outbox: id } }]);
        return toOutboxItem(row);
      });
      db.signalTasksReady();
      return item;
    },
  };
}

/** The attempt's outcome came after its lease was taken over: recorded, but the item's state is the new holder's. */
function leaseLost(lease: OutboxLease, audit: AuditEntry[]): AuditEntry {
  return { kind: 'outbox.lease-lost', runId: audit[0]?.runId ?? null, actor: lease.owner, data: { outbox: lease.id, attempt: lease.attempt } };
}
