import type { OutboxState } from '../core/states.ts';
import type { Json } from '../core/types.ts';
import type { AuditEntry } from './audit.ts';

/**
 * The outbox: outbound messages (replies to channels, agents' `deliver` actions),
 * committed before they are sent, sent by a dispatcher with retries and backoff,
 * every attempt audited.
 *
 * Lifecycle: pending ─lease→ (attempt) ─┬→ sent
 *                                       ├→ pending again at next_attempt_at (retryable failure)
 *                                       └→ dead (not retryable, or attempts spent)
 * A lease is a conditional UPDATE that also counts the attempt, so an attempt whose
 * dispatcher died still counts, and a late answer from a dispatcher whose lease was
 * taken over is refused (fenced by owner and attempt number).
 */
export interface OutboxItem {
  id: string;
  idempotencyKey: string;
  runId: string | null;
  taskId: string | null;
  channel: string;
  account: string;
  /** Where to send it, in the channel's terms (e.g. {channel, thread_ts} for Slack). */
  target: Json;
  payload: Json;
  state: OutboxState;
  /** Attempts begun (a lease counts one). */
  attempts: number;
  nextAttemptAt: number;
  lastError: Json | null;
  /** The platform's answer to the successful attempt. */
  response: Json | null;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  createdAt: number;
  sentAt: number | null;
}

export type NewOutboxItem = { idempotencyKey: string; runId: string | null; taskId: string | null; channel: string; account: string; target: Json; payload: Json };

/** Identifies one leased attempt; every record of its outcome is fenced by it. */
export interface OutboxLease {
  id: string;
  owner: string;
  /** The item's attempt number under this lease. */
  attempt: number;
}

export interface OutboxStore {
  /** Adds an item unless one with the same idempotency key exists; returns the stored item. */
  enqueue(item: NewOutboxItem, now: number): Promise<OutboxItem>;
  list(filter: { state?: OutboxItem['state']; runId?: string; limit: number }): Promise<OutboxItem[]>;
  get(id: string): Promise<OutboxItem | null>;
  /**
   * Leases up to `limit` due items (pending, next attempt due, no live lease) for
   * `owner` until now + leaseMs, counting the attempt. Safe to call from any number of
   * processes at once: each item is leased by one of them.
   */
  lease(req: { owner: string; limit: number; leaseMs: number; now: number }): Promise<OutboxItem[]>;
  /** Records a successful attempt (state sent, with the platform's response) and its audit events. False if the lease was lost. */
  complete(lease: OutboxLease, response: Json | null, now: number, audit: AuditEntry[]): Promise<boolean>;
  /**
   * Records a failed attempt: pending again at `retryAt`, or dead when `retryAt` is null.
   * The audit events are written either way (the attempt happened). False if the lease was lost.
   */
  fail(lease: OutboxLease, failure: { error: Json; retryAt: number | null }, now: number, audit: AuditEntry[]): Promise<boolean>;
  /** When the earliest pending item is due (null if none): how long a dispatcher may sleep. */
  nextDue(): Promise<number | null>;
  /** Puts a dead item back in the queue with fresh attempts (operator replay). */
  requeue(id: string, actor: string, now: number): Promise<OutboxItem>;
}
