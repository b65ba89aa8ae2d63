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
  /** The chain stream (docs/audit.md) when it is not the task's, the run's or a shared one by kind. */
  stream?: string;
  /**
   * The first event of its stream, whose subject (a run, a task) this transaction
   * creates: there is no head to lock and read yet. Not stored. Were it wrong, the
   * unique (stream, stream_seq) index would refuse the event and the transaction.
   */
  opensStream?: true;
}

export interface AuditEvent extends Omit<AuditEntry, 'stream'> {
  seq: number;
  at: number;
}

/** An event with its place in its stream's hash chain (null columns: written before the chain began, or forged). */
export interface ChainedEvent extends AuditEvent {
  stream: string | null;
  streamSeq: number | null;
  prevHash: string | null;
  hash: string | null;
  /** The data column as stored (its canonical JSON): what the hash covers. */
  dataText: string | null;
}

/** The newest event of a stream (a head), or the last pruned one (an anchor). */
export interface StreamHead {
  stream: string;
  streamSeq: number;
  hash: string;
}

/** A Merkle leaf's inputs: the event's global seq and its chain position and hash. */
export interface LeafRow {
  seq: number;
  stream: string | null;
  streamSeq: number | null;
  hash: string | null;
}

/** A signed checkpoint: the Merkle root of the events in (fromSeq, toSeq], chained to the previous one by prevHash. */
export interface Checkpoint {
  n: number;
  fromSeq: number;
  toSeq: number;
  count: number;
  root: string;
  prevHash: string;
  at: number;
  keyId: string;
  signature: string;
  hash: string;
}

export interface ChainState {
  /** Events up to this seq were written before the chain began. */
  legacyUntil: number;
  /** Events up to this seq were pruned (their checkpoints remain). */
  prunedUntil: number;
}

export interface VerificationRecord {
  at: number;
  status: string;
  events: number;
  report: Json;
}

export interface AuditStore {
  append(entries: AuditEntry[], now: number): Promise<void>;
  list(filter: { runId?: string; afterSeq?: number; limit: number }): Promise<AuditEvent[]>;
  /** The mesh's events (kind `mesh.…`), newest first, before a seq cursor; one run's only when `runId` is given. */
  meshEvents(q: { runId?: string; beforeSeq?: number; limit: number }): Promise<AuditEvent[]>;
  /** The newest audit sequence number (0 when empty), to tail from now on. */
  latestSeq(): Promise<number>;

  // ── the chain (src/audit/) ──
  /** Chained events in (stream, streamSeq) order after a cursor; one stream only when `stream` is given. */
  chainPage(q: { after: { stream: string; streamSeq: number } | null; stream?: string; limit: number }): Promise<ChainedEvent[]>;
  /** Events without a chain position after the chain began, in seq order. */
  unchained(q: { afterSeq: number; limit: number }): Promise<ChainedEvent[]>;
  event(seq: number): Promise<ChainedEvent | null>;
  heads(): Promise<StreamHead[]>;
  anchors(): Promise<StreamHead[]>;
  chainState(): Promise<ChainState>;
  /** Leaf inputs of the events with seq in (fromSeq, toSeq], in seq order. */
  leaves(fromSeq: number, toSeq: number): Promise<LeafRow[]>;
  /** The streams of a run: its own and its tasks'. */
  streamsOfRun(runId: string): Promise<string[]>;
  /** The highest seq below which no transaction can still commit an event (waits for writers in flight). */
  sealHorizon(): Promise<number>;
  checkpoints(): Promise<Checkpoint[]>;
  /** Stores a checkpoint; false when another sealer stored number `n` first. */
  addCheckpoint(cp: Checkpoint): Promise<boolean>;
  /** Deletes the events up to `toSeq` (never the newest), keeping each stream's last pruned (seq, hash) as its anchor. */
  prune(toSeq: number): Promise<number>;
  recordVerification(r: VerificationRecord): Promise<void>;
  lastVerification(): Promise<VerificationRecord | null>;
}
