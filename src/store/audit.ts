import type { Json } from '../core/types.ts';

/**
 * The audit trail's port: append-only events, written in the same transaction as the
 * change they record. A leaf of the port files, so the sub-ports that take audit
 * entries (outbox, schedules) need not import the whole Store port.
 */
export interface AuditEntry {
  kind: string;
  runId?: string | null;
  taskId?: string | null;
  agent?: string | null;
  actor?: string | null;
  digest?: string | null;
  data?: Json;
}

export interface AuditEvent extends AuditEntry {
  seq: number;
  at: number;
}

export interface AuditStore {
  append(entries: AuditEntry[], now: number): Promise<void>;
  list(filter: { runId?: string; afterSeq?: number; limit: number }): Promise<AuditEvent[]>;
  /** The newest audit sequence number (0 when empty), to tail from now on. */
  latestSeq(): Promise<number>;
}
