import type { BreakerState } from '../core/states.ts';
import type { AuditEntry } from './audit.ts';

/**
 * Circuit breakers, one per agent, tool or model endpoint (`agent:<name>`,
 * `tool:<name>`, `model:<endpoint>`), shared by every worker through the store.
 * The store applies a change atomically; what the change is (when a breaker opens,
 * closes or lets a probe through) is validation/breakers.ts's decision, handed in.
 */
export interface BreakerRecord {
  key: string;
  state: BreakerState;
  failures: number;
  calls: number;
  windowStart: number;
  /** Open: when the half-open probe may go through. */
  retryAt: number | null;
  probeOwner: string | null;
  probeUntil: number | null;
  lastError: string | null;
  changedAt: number;
}

/** A change to one breaker: the next record (null: leave it), and the audit events of the transition. */
export type BreakerChange = (current: BreakerRecord | null) => { next: BreakerRecord; audit: AuditEntry[] } | null;

export interface BreakerStore {
  list(): Promise<BreakerRecord[]>;
  get(key: string): Promise<BreakerRecord | null>;
  /** Applies `change` to the breaker's current record in one transaction (the row locked); returns the record after it. */
  update(key: string, change: BreakerChange, now: number): Promise<BreakerRecord | null>;
}
