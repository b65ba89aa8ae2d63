import { systemClock, type Clock } from '../core/clock.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import { PollLoop } from '../core/poll-loop.ts';
import type { AuditEvent, Store } from '../store/store.ts';
import { short, when } from './format.ts';

type Data = Record<string, unknown>;

function actionOf(d: Data): string {
  const a = d.action as { kind?: string; name?: string } | null | undefined;
  return a?.kind ? `${a.kind}:${a.name ?? '?'}` : 'its action';
}

/** The time of day (UTC, as every time the CLI prints) a line happened at. */
function time(at: number): string {
  return new Date(at).toISOString().slice(11, 23);
}

function at(ms: unknown): string {
  return typeof ms === 'number' ? when(ms) : '?';
}

/** What happened, in words; null for the kinds that stay in the audit log only. */
function describe(e: AuditEvent): string | null {
  const d = (e.data ?? {}) as Data;
  const err = d.error as { code?: string; message?: string } | undefined;
  switch (e.kind) {
    case 'run.created':
      return `started → ${e.agent}`;
    case 'action.handoff':
      return `${e.agent} hands off to ${String(d.agent)}`;
    case 'action.refused':
      return `${e.agent}: action refused (${String(d.code)})`;
    case 'effect.completed':
      return `${e.agent} called tool ${String(d.tool)}${d.maybeRepeated ? ' (maybeRepeated: run again after an interruption, same idempotency key)' : ''}`;
    case 'effect.failed':
      return `${e.agent}: tool ${String(d.tool)} failed`;
    case 'effect.replayed':
      return `${e.agent}: tool ${String(d.tool)} replayed from the effects ledger`;
    // The waits: a task that says nothing for a while is waiting for one of these.
    case 'approval.requested':
      return `${e.agent} waits for approval by ${String(d.approvers)} of ${actionOf(d)} (${String(d.approval)}; \`spine approvals show ${String(d.approval)}\`)`;
    case 'task.escalated':
      return `${e.agent} escalated: ${short(d.reason, 100)} (${String(d.approval)}; \`spine approvals show ${String(d.approval)}\`)`;
    case 'task.deferred':
      return `${e.agent} waits until ${at(d.until)}: ${short(d.reason, 100)}`;
    case 'approval.approved':
    case 'approval.denied':
      return `${e.agent}: ${String(d.approval)} ${e.kind.slice('approval.'.length)} by ${e.actor ?? '?'}${d.reason ? ` (${short(d.reason, 80)})` : ''}`;
    case 'approval.expired':
      return `${e.agent}: ${String(d.approval)} expired (${String(d.escalation)})`;
    case 'approval.cancelled':
      return `${e.agent}: ${String(d.approval)} closed (run cancelled)`;
    case 'task.succeeded':
      return `${e.agent} finished`;
    case 'task.retry-scheduled':
      return `${e.agent}: attempt ${String(d.attempt)} failed; retry at ${at(d.runAt)}`;
    case 'task.dead':
      return `${e.agent} dead-lettered: ${err ? `${err.code}: ${short(err.message, 120)}` : ''}`;
    case 'task.reclaimed':
      return `${e.agent}: lease expired; task reclaimed`;
    case 'run.succeeded':
      return 'succeeded';
    case 'run.failed':
      return `failed (replay it with \`spine runs retry ${e.runId}\`)`;
    case 'run.cancelled':
      return 'cancelled';
    default:
      return null;
  }
}

/** One console line: when, which run, what. */
export function liveLine(e: AuditEvent): string | null {
  const what = describe(e);
  return what === null ? null : `${time(e.at)} ${e.runId ?? '-'}  ${what}`;
}

/** How long a gap in audit sequence numbers is waited on before it is passed (a rolled-back transaction leaves one for good). */
const GAP_HOLD_MS = 1_000;

/**
 * Follows the audit log from a point on and prints the interesting events (the
 * console of `spine up`, and `spine runs follow` for one run).
 */
export class AuditFollower {
  private after = 0;
  private gapSince: number | null = null;
  private busy: Promise<void> = Promise.resolve();
  private readonly store: Store;
  private readonly print: (line: string) => void;
  private readonly clock: Clock;
  private readonly loop: PollLoop;
  private readonly runId: string | undefined;

  constructor(store: Store, print: (line: string) => void, opts: { clock?: Clock; log?: Logger; everyMs?: number; runId?: string } = {}) {
    this.store = store;
    this.print = print;
    this.clock = opts.clock ?? systemClock;
    this.runId = opts.runId;
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

  /**
   * Starts from the newest event: only what happens from now on is printed — except,
   * when following one run, what that run already did, printed first.
   */
  async start(): Promise<void> {
    const latest = await this.store.audit.latestSeq();
    if (this.runId !== undefined) {
      for (let after = 0; ; ) {
        const events = await this.store.audit.list({ runId: this.runId, afterSeq: after, limit: 500 });
        for (const e of events) if (e.seq <= latest) this.show(e);
        if (events.length < 500 || events.at(-1)!.seq >= latest) break;
        after = events.at(-1)!.seq;
      }
    }
    this.after = latest;
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
   * (So the whole log is read, and one run's events picked here.)
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
          if (this.runId === undefined || e.runId === this.runId) this.show(e);
        }
        if (events.length < 500) return;
      }
    });
    this.busy = read.catch(() => undefined);
    return read;
  }

  private show(e: AuditEvent): void {
    const line = liveLine(e);
    if (line) this.print(line);
  }
}
