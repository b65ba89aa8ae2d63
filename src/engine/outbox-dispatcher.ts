import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';
import { SpineError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import { PollLoop } from '../core/poll-loop.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import type { Json } from '../core/types.ts';
import { backoffMs } from '../core/backoff.ts';
import type { ChannelAdapter, SendResult } from '../core/channel.ts';
import type { OutboxItem, OutboxLease } from '../store/outbox.ts';
import type { AuditEntry, Store } from '../store/store.ts';

/** How the dispatcher batches, times out and retries outbound messages (`channels.outbox` in the config). */
export interface OutboxOptions {
  /** Attempts per item, including the first; then it is dead. */
  maxAttempts: number;
  /** Exponential backoff between attempts: min(maxMs, initialMs · factor^(n−1)), with full jitter by default. */
  retry: { initialMs: number; maxMs: number; factor: number; jitter: 'full' | 'none' };
  /** Items leased at once. */
  batch: number;
  /** Longest sleep between looks for due items (wake-ups and the next due time usually come sooner). */
  pollMs: number;
  /** How long a leased item is reserved for its dispatcher; raised to cover a whole batch of timeouts. */
  leaseMs: number;
  /** Per-request timeout of a platform call. */
  timeoutMs: number;
}

export const DEFAULT_OUTBOX: OutboxOptions = {
  maxAttempts: 8,
  retry: { initialMs: 1_000, maxMs: 5 * 60_000, factor: 2, jitter: 'full' },
  batch: 16,
  pollMs: 1_000,
  leaseMs: 60_000,
  timeoutMs: 10_000,
};

export interface DispatcherDeps {
  store: Store;
  /** Adapters by channel name (createChannels). */
  channels: ReadonlyMap<string, ChannelAdapter>;
  options?: Partial<Omit<OutboxOptions, 'retry'>> & { retry?: Partial<OutboxOptions['retry']> };
  /** The HTTP client for platform calls (tests inject one; default: global fetch). */
  fetch?: typeof fetch;
  clock?: Clock;
  log?: Logger;
  id?: string;
  /** Jitter source (tests make it deterministic). */
  random?: () => number;
}

/**
 * Sends the outbox. Leases due items in batches (a conditional UPDATE, so several
 * dispatchers in several processes never hold one item at once), sends each
 * through its channel adapter and records the attempt with its audit events in one
 * transaction: sent (with the platform's response), pending again after backoff
 * (retryable failures; a platform's Retry-After is the minimum wait), or dead.
 *
 * Delivery is at least once: if a dispatcher dies between the platform accepting a
 * message and the record, the lease expires and the message is sent again (the
 * attempt counted). Items for one target are sent in order within a batch.
 */
export class OutboxDispatcher {
  readonly id: string;
  private readonly store: Store;
  private channels: ReadonlyMap<string, ChannelAdapter>;
  private readonly opts: OutboxOptions;
  private readonly fetchImpl: typeof fetch;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly loop: PollLoop;
  private unsubscribe: (() => void) | null = null;

  constructor(deps: DispatcherDeps) {
    this.store = deps.store;
    this.channels = deps.channels;
    const o = deps.options ?? {};
    const opts: OutboxOptions = { ...DEFAULT_OUTBOX, ...o, retry: { ...DEFAULT_OUTBOX.retry, ...o.retry } };
    // A lease must outlive the batch it covers, or another dispatcher would resend items still in flight.
    opts.leaseMs = Math.max(opts.leaseMs, opts.timeoutMs * opts.batch + 5_000);
    this.opts = opts;
    this.fetchImpl = deps.fetch ?? globalThis.fetch;
    this.clock = deps.clock ?? systemClock;
    this.log = deps.log ?? silentLogger;
    this.id = deps.id ?? newId('dsp');
    this.random = deps.random ?? Math.random;
    this.loop = new PollLoop({
      name: 'outbox dispatcher',
      clock: this.clock,
      log: this.log,
      pass: () => this.pass(),
      retryMs: () => Math.min(this.opts.pollMs, 1_000),
    });
  }

  get options(): Readonly<OutboxOptions> {
    return this.opts;
  }

  /** Starts the loop: wakes when a commit queued something, else sleeps until the next item is due (at most pollMs). */
  async start(): Promise<void> {
    if (this.loop.running) return;
    this.unsubscribe = this.store.onTasksReady(() => this.wake());
    this.loop.start();
  }

  /** Stops leasing and waits for the batch in flight (each send is bounded by timeoutMs). */
  async stop(): Promise<void> {
    await this.loop.stop();
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /** Swaps in the adapters of a reloaded config; items in flight finish with the old ones. */
  reconfigure(channels: ReadonlyMap<string, ChannelAdapter>): void {
    this.channels = channels;
    this.wake();
  }

  /** Asks the loop to look for due items now. */
  wake(): void {
    this.loop.wake();
  }

  /** Leases one batch of due items and attempts each; returns how many were leased. */
  async dispatchOnce(): Promise<number> {
    const items = await this.store.outbox.lease({ owner: this.id, limit: this.opts.batch, leaseMs: this.opts.leaseMs, now: this.clock.now() });
    if (items.length === 0) return 0;
    // One target's messages go out in order; different targets in parallel.
    const lanes = new Map<string, OutboxItem[]>();
    for (const item of items) {
      const key = `${item.channel}\u0000${item.account}\u0000${JSON.stringify(item.target)}`;
      const lane = lanes.get(key);
      if (lane) lane.push(item);
      else lanes.set(key, [item]);
    }
    await Promise.all(
      [...lanes.values()].map(async (lane) => {
        for (const item of lane) {
          try {
            await this.attempt(item);
          } catch (err) {
            // Recording failed (store down): the lease expires and the item is tried again.
            this.log.error('outbox: recording an attempt failed', { outbox: item.id, error: err instanceof Error ? err.message : String(err) });
          }
        }
      }),
    );
    return items.length;
  }

  /** One pass: a batch, then sleep until the next item is due (at most pollMs). */
  private async pass(): Promise<number> {
    const leased = await this.dispatchOnce();
    if (leased === this.opts.batch) return 0; // probably more due
    const due = await this.store.outbox.nextDue();
    return due === null ? this.opts.pollMs : Math.min(this.opts.pollMs, Math.max(10, due - this.clock.now()));
  }

  /** A fetch whose every request gives up after timeoutMs. */
  private readonly timedFetch = (input: Parameters<typeof fetch>[0], init?: RequestInit): Promise<Response> => {
    const timeout = AbortSignal.timeout(this.opts.timeoutMs);
    return this.fetchImpl(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout });
  };

  private async attempt(item: OutboxItem): Promise<void> {
    const lease: OutboxLease = { id: item.id, owner: this.id, attempt: item.attempts };
    const base = { runId: item.runId, taskId: item.taskId, actor: this.id };
    const about = { outbox: item.id, channel: item.channel, account: item.account, attempt: item.attempts };
    const { maxAttempts } = this.opts;

    if (item.attempts > maxAttempts) {
      // Its last attempt's dispatcher died before recording the outcome, and no attempts are left.
      const error: Json = { code: 'OUTBOX_ATTEMPTS_EXHAUSTED', message: `all ${maxAttempts} attempts were used (the last one's outcome is unknown: its dispatcher stopped)`, retryable: false };
      await this.store.outbox.fail(lease, { error, retryAt: null }, this.clock.now(), [{ ...base, kind: 'outbox.dead', data: { ...about, error } }]);
      return;
    }

    const started = this.clock.now();
    const adapter = this.channels.get(item.channel);
    let result: SendResult;
    if (!adapter) {
      result = { ok: false, retryable: false, error: `no "${item.channel}" channel is configured` };
    } else {
      try {
        result = await adapter.send(item, this.timedFetch);
      } catch (err) {
        // An unknown failure may pass; a Spine error says whether it will (an unset secret will not).
        result = { ok: false, retryable: err instanceof SpineError ? err.retryable : true, error: `adapter failed: ${err instanceof Error ? err.message : String(err)}` };
      }
    }
    const now = this.clock.now();
    const attempt = { ...about, durationMs: now - started, ...(result.status === undefined ? {} : { status: result.status }) };

    if (result.ok) {
      const audit: AuditEntry[] = [
        { ...base, kind: 'outbox.attempt', data: { ...attempt, outcome: 'sent' } },
        { ...base, kind: 'outbox.sent', data: { ...about } },
      ];
      await this.store.outbox.complete(lease, result.response ?? null, now, audit);
      return;
    }

    const error: Json = {
      code: 'DELIVERY_FAILED',
      message: result.error ?? 'send failed',
      retryable: result.retryable,
      ...(result.status === undefined ? {} : { status: result.status }),
      ...(result.response === undefined ? {} : { response: result.response }),
    };
    if (result.retryable && item.attempts < maxAttempts) {
      const delayMs = Math.max(result.retryAfterMs ?? 0, backoffMs({ maxAttempts, ...this.opts.retry }, item.attempts, this.random));
      const retryAt = now + delayMs;
      const audit: AuditEntry[] = [
        {
          ...base,
          kind: 'outbox.attempt',
          data: { ...attempt, outcome: 'retry', error, delayMs, nextAttemptAt: retryAt, ...(result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs }) },
        },
      ];
      await this.store.outbox.fail(lease, { error, retryAt }, now, audit);
      this.log.warn('outbox: attempt failed; will retry', { outbox: item.id, channel: item.channel, attempt: item.attempts, error: result.error, delayMs });
      return;
    }
    const reason = result.retryable ? `attempts exhausted (${maxAttempts})` : 'not retryable';
    const audit: AuditEntry[] = [
      { ...base, kind: 'outbox.attempt', data: { ...attempt, outcome: 'dead', error } },
      { ...base, kind: 'outbox.dead', data: { ...about, reason, error } },
    ];
    await this.store.outbox.fail(lease, { error, retryAt: null }, now, audit);
    this.log.error('outbox: message is dead', { outbox: item.id, channel: item.channel, reason, error: result.error });
  }
}
