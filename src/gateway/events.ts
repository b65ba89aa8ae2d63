import { systemClock, type Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { PollLoop } from '../core/poll-loop.ts';
import type { AuditEvent, Store } from '../store/store.ts';

/**
 * The live event stream: the audit log, in `seq` order, pushed to subscribers (SSE
 * and WebSocket clients). `seq` is the cursor: a subscriber that resumes after the
 * last seq it saw gets everything committed since, exactly once.
 *
 * One hub per gateway reads new audit events once and fans them out: a poll loop
 * woken when this process commits (store.onCommitted, so in-process commits reach
 * clients at once) that polls every `pollMs` (commits by workers in other processes).
 *
 * The hub keeps a watermark: the seq up to which it has offered every event. A new
 * subscriber is registered at the watermark, reads its backlog (cursor, watermark]
 * from the store, and gets everything above it from the hub — live events that
 * arrive while it reads are held and merged by seq — so there is neither a gap nor a
 * duplicate between backlog and live. The watermark only passes a missing seq once
 * it is visible or known never to come (GAP_WAIT_MS), so a seq that becomes visible
 * late (PostgreSQL commits out of seq order) is not skipped.
 */

/** One event as it goes out: the audit event and its JSON (serialised once for all subscribers). */
export interface StreamEvent {
  seq: number;
  runId: string | null;
  json: string;
}

export type EndReason = 'client' | 'shutdown' | 'slow' | 'error';

/** Where a subscription's events go; `send` returns false when the client cannot keep up. */
export interface StreamSink {
  send(e: StreamEvent): boolean;
  /** The backlog has been sent; what follows is live. */
  ready(cursor: number): void;
  /** The subscription ended for a reason other than the client leaving. */
  end(reason: EndReason, cursor: number): void;
  /** A live-only event (e.g. a model's streamed tokens): no seq, never stored or replayed. Best effort. */
  ephemeral?(kind: string, json: string): void;
}

const PAGE = 500;
/** Live events held for a subscriber still reading its backlog, before it is dropped as too slow. */
const MAX_PENDING = 50_000;

export class Subscription {
  cursor: number;
  readonly runId: string | null;
  private live = false;
  private pending: StreamEvent[] = [];
  private closed = false;
  private readonly sink: StreamSink;
  private readonly onClose: (s: Subscription) => void;

  constructor(cursor: number, runId: string | null, sink: StreamSink, onClose: (s: Subscription) => void) {
    this.cursor = cursor;
    this.runId = runId;
    this.sink = sink;
    this.onClose = onClose;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Called by the hub for every new event, in seq order. */
  offer(e: StreamEvent): void {
    if (this.closed || (this.runId !== null && e.runId !== this.runId)) return;
    if (this.live) {
      this.deliver(e);
      return;
    }
    this.pending.push(e);
    if (this.pending.length > MAX_PENDING) this.close('slow');
  }

  deliver(e: StreamEvent): void {
    if (this.closed || e.seq <= this.cursor) return;
    this.cursor = e.seq;
    if (!this.sink.send(e)) this.close('slow');
  }

  /** A live-only event; subscribers still reading their backlog do not get it. */
  ephemeral(runId: string | null, kind: string, json: string): void {
    if (this.closed || !this.live || (this.runId !== null && runId !== this.runId)) return;
    this.sink.ephemeral?.(kind, json);
  }

  /** Ends the backlog: held live events go out (deduplicated by seq), then events flow directly. */
  goLive(): void {
    if (this.closed) return;
    const held = this.pending;
    this.pending = [];
    for (const e of held) this.deliver(e);
    if (this.closed) return;
    this.live = true;
    this.sink.ready(this.cursor);
  }

  /** Ends the subscription; `client` means the client left (nothing more is written). */
  close(reason: EndReason): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.onClose(this);
    if (reason !== 'client') this.sink.end(reason, this.cursor);
  }
}

export function toStreamEvent(e: AuditEvent): StreamEvent {
  return {
    seq: e.seq,
    runId: e.runId ?? null,
    json: JSON.stringify({
      seq: e.seq,
      at: e.at,
      kind: e.kind,
      runId: e.runId ?? null,
      taskId: e.taskId ?? null,
      agent: e.agent ?? null,
      actor: e.actor ?? null,
      digest: e.digest ?? null,
      data: e.data ?? null,
    }),
  };
}

/** When the hub starts, it reads back this many seqs to establish where the log is contiguous. */
const TAIL = 1_000;
/**
 * A gap in seqs (a lower seq not yet visible) is waited for this long before it is
 * taken as never committed (a rolled-back insert) and skipped. SQLite assigns seqs in
 * commit order and never has gaps; PostgreSQL can (identity values are taken at
 * insert time and concurrent transactions commit in any order).
 */
const GAP_WAIT_MS = 1_000;
const GAP_RETRY_MS = 25;

export class EventHub {
  private readonly store: Store;
  private readonly pollMs: number;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly subs = new Set<Subscription>();
  /** Watermark: every event with seq ≤ lastSeq has been offered to subscribers (or its seq skipped as a gap). */
  private lastSeq = 0;
  private running: Promise<void> | null = null;
  /** The latest start (its catch-up reads the store), kept after a stop so `closing` can wait for it. */
  private lastStart: Promise<void> = Promise.resolve();
  /** The hub has caught up with the log since it started. */
  private ready = false;
  private stopListening: (() => void) | null = null;
  /** The reader: a poll loop woken by this process's commits. One per start; a new one waits for the last to end. */
  private loop: PollLoop | null = null;
  private stopped: Promise<void> = Promise.resolve();
  private gapSince: number | null = null;
  private closed = false;

  constructor(store: Store, opts: { pollMs: number; log: Logger; clock?: Clock }) {
    this.store = store;
    this.pollMs = opts.pollMs;
    this.log = opts.log;
    this.clock = opts.clock ?? systemClock;
  }

  /**
   * Pushes a live-only event to current subscribers: streamed model tokens and the like,
   * too fine-grained for the audit log. Clients that reconnect do not get them back.
   */
  publishEphemeral(kind: string, runId: string | null, payload: unknown): void {
    if (this.subs.size === 0) return;
    const json = JSON.stringify(payload);
    for (const s of this.subs) s.ephemeral(runId, kind, json);
  }

  get subscribers(): number {
    return this.subs.size;
  }

  /**
   * Subscribes from `after` (null: from now on). Resolves once the subscriber is
   * registered and its backlog has been sent; the sink gets `ready` at that point.
   */
  async subscribe(opts: { after: number | null; runId: string | null; sink: StreamSink }): Promise<Subscription> {
    // Start (or join) the hub; if it stopped again meanwhile (its last subscriber left), start it anew.
    for (;;) {
      if (this.closed) throw new Error('event stream is shutting down');
      await this.start();
      if (this.running && this.ready) break;
    }
    // Synchronously with reading the watermark: every event above it will be offered to this subscriber.
    const watermark = this.lastSeq;
    const sub = new Subscription(opts.after ?? watermark, opts.runId, opts.sink, (s) => this.remove(s));
    this.subs.add(sub);
    try {
      // The backlog, (cursor, watermark], from the store; above the watermark events come from the hub.
      for (;;) {
        const page = await this.store.audit.list({ afterSeq: sub.cursor, limit: PAGE, ...(opts.runId ? { runId: opts.runId } : {}) });
        let end = page.length < PAGE;
        for (const e of page) {
          if (e.seq > watermark) {
            end = true;
            break;
          }
          sub.deliver(toStreamEvent(e));
        }
        if (sub.isClosed || end) break;
      }
      sub.goLive();
    } catch (err) {
      this.log.error('event stream: backlog read failed', { error: err instanceof Error ? err.message : String(err) });
      sub.close('error');
    }
    return sub;
  }

  /** Ends every subscription (sinks get `end('shutdown')`) and stops reading. */
  close(): void {
    this.closed = true;
    for (const s of [...this.subs]) s.close('shutdown');
    this.stop();
  }

  /** Resolves once the reader has stopped and no longer touches the store (after close, before the store closes). */
  async closing(): Promise<void> {
    await this.lastStart.catch(() => undefined);
    await this.stopped;
  }

  private start(): Promise<void> {
    this.running ??= (async () => {
      await this.stopped; // the previous reader's last pass ends first
      const latest = await this.store.audit.latestSeq();
      if (this.closed) return;
      this.lastSeq = Math.max(0, latest - TAIL);
      this.gapSince = null;
      // Catch up through the contiguous part of the log (offering to whoever is subscribed; they dedupe by seq).
      await this.fetchNew();
      if (this.closed) return;
      this.ready = true;
      const loop = new PollLoop({ name: 'event stream', clock: this.clock, log: this.log, pass: () => this.pass(), keepAlive: false });
      this.loop = loop;
      this.stopListening = this.store.onCommitted(() => loop.wake());
      // First pass at once: whatever committed during the catch-up.
      loop.start();
    })();
    const running = this.running;
    this.lastStart = running;
    return running.catch((err: unknown) => {
      if (this.running === running) this.stop();
      throw err;
    });
  }

  private stop(): void {
    this.stopListening?.();
    this.stopListening = null;
    if (this.loop) this.stopped = this.loop.stop();
    this.loop = null;
    this.running = null;
    this.ready = false;
  }

  private remove(s: Subscription): void {
    this.subs.delete(s);
    // Nobody listening: stop reading. The next subscriber starts afresh from its own cursor.
    if (this.subs.size === 0 && this.ready) this.stop();
  }

  /** One read: new events, offered in seq order; then sleep (briefly while a gap may still fill). */
  private async pass(): Promise<number> {
    if (this.subs.size === 0) return this.pollMs;
    try {
      return (await this.fetchNew()) ? GAP_RETRY_MS : this.pollMs;
    } catch (err) {
      this.log.warn('event stream: read failed; will retry', { error: err instanceof Error ? err.message : String(err) });
      return this.pollMs;
    }
  }

  /** Reads new events in seq order and offers them; returns true when it stopped at a gap that may still fill (see GAP_WAIT_MS). */
  private async fetchNew(): Promise<boolean> {
    for (;;) {
      const page = await this.store.audit.list({ afterSeq: this.lastSeq, limit: PAGE });
      for (const raw of page) {
        if (raw.seq > this.lastSeq + 1 && !this.gapExpired(raw.at)) return true;
        this.gapSince = null;
        this.lastSeq = raw.seq;
        const e = toStreamEvent(raw);
        for (const s of this.subs) s.offer(e);
      }
      if (page.length < PAGE) return false;
    }
  }

  /** Whether the seqs missing before an event committed at `at` can be given up on. */
  private gapExpired(at: number): boolean {
    const now = this.clock.now();
    // An old event after the gap: whatever held the missing seqs is long finished (rolled back).
    if (now - at > GAP_WAIT_MS) return true;
    this.gapSince ??= now;
    return now - this.gapSince > GAP_WAIT_MS;
  }
}
