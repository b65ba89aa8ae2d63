import { systemClock, type Clock } from '../core/clock.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import { PollLoop } from '../core/poll-loop.ts';
import type { AuditEvent, Store } from '../store/store.ts';
import { short } from './format.ts';

/** Audit kinds worth a line on the console of `spine up`; the rest stay in the log. */
function describe(e: AuditEvent): string | null {
  const d = (e.data ?? {}) as Record<string, unknown>;
  const err = d.error as { code?: string; message?: string } | undefined;
  switch (e.kind) {
    case 'run.created':
      return `run ${e.runId} started → ${e.agent}`;
    case 'action.handoff':
      return `  ${e.agent} hands off to ${String(d.agent)}`;
    case 'action.refused':
      return `  ${e.agent}: action refused (${String(d.code)})`;
    case 'effect.completed':
      return `  ${e.agent} called tool ${String(d.tool)}${d.maybeRepeated ? ' (re-executed after a crash)' : ''}`;
    case 'effect.failed':
      return `  ${e.agent}: tool ${String(d.tool)} failed`;
    case 'effect.replayed':
      return `  ${e.agent}: tool ${String(d.tool)} replayed from the effects ledger`;
    case 'task.succeeded':
      return `  ${e.agent} finished`;
    case 'task.retry-scheduled':
      return `  ${e.agent}: attempt ${String(d.attempt)} failed; retry scheduled`;
    case 'task.dead':
      return `  ${e.agent} dead-lettered: ${err ? `${err.code}: ${short(err.message, 120)}` : ''}`;
    case 'task.reclaimed':
      return `  ${e.agent}: lease expired; task reclaimed`;
    case 'run.succeeded':
      return `run ${e.runId} succeeded`;
    case 'run.failed':
      return `run ${e.runId} failed (replay it with \`spine runs retry ${e.runId}\`)`;
    case 'run.cancelled':
      return `run ${e.runId} cancelled`;
    default:
      return null;
  }
}

/** How long a gap in audit sequence numbers is waited on before it is passed (a rolled-back transaction leaves one for good). */
const GAP_HOLD_MS = 1_000;

/** Follows the audit log from a point on and prints the interesting events (the console of `spine up`). */
export class AuditFollower {
  private after = 0;
  private gapSince: number | null = null;
  private busy: Promise<void> = Promise.resolve();
  private readonly store: Store;
  private readonly print: (line: string) => void;
  private readonly clock: Clock;
  private readonly loop: PollLoop;

  constructor(store: Store, print: (line: string) => void, opts: { clock?: Clock; log?: Logger; everyMs?: number } = {}) {
    this.store = store;
    this.print = print;
    this.clock = opts.clock ?? systemClock;
    const everyMs = opts.everyMs ?? 100;
    this.loop = new PollLoop({
      name: 'live log',
      clock: this.clock,
      log: opts.log ?? silentLogger,
      pass: async () => {
        await this.poll();
        return everyMs;
      },
    });
  }

  /** Starts from the newest event: only what happens from now on is printed. */
  async start(): Promise<void> {
    this.after = await this.store.audit.latestSeq();
  }

  /** Prints as events come, every `everyMs`, until `stop`. */
  follow(): void {
    this.loop.start();
  }

  /** Stops following; resolves once the last read is done (the store may close then). */
  async stop(): Promise<void> {
    await this.loop.stop();
    await this.busy;
  }

  /**
   * Prints every event committed so far; calls are serialised. On a database whose
   * sequence numbers can commit out of order (PostgreSQL), a gap is held for a
   * moment: a later commit may still fill it, and its event must not be skipped.
   */
  poll(): Promise<void> {
    const read = this.busy.then(async () => {
      for (;;) {
        const events = await this.store.audit.list({ afterSeq: this.after, limit: 500 });
        for (const e of events) {
          if (e.seq !== this.after + 1) {
            this.gapSince ??= this.clock.now();
            if (this.clock.now() - this.gapSince < GAP_HOLD_MS) return;
          }
          this.gapSince = null;
          this.after = e.seq;
          const line = describe(e);
          if (line) this.print(line);
        }
        if (events.length < 500) return;
      }
    });
    this.busy = read.catch(() => undefined);
    return read;
  }
}
