import { appendFileSync } from 'node:fs';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { PollLoop } from '../core/poll-loop.ts';
import type { AuditStore, Checkpoint } from '../store/audit.ts';
import { seal, type AuditKeys } from './checkpoint.ts';

export interface SealerOptions {
  audit: AuditStore;
  keys: () => AuditKeys | null;
  everyMs: () => number;
  /** Witnesses outside the store: a file each checkpoint is appended to (JSON Lines), a URL it is POSTed to. */
  witness: () => { file: string | null; url: string | null };
  clock: Clock;
  log: Logger;
}

/**
 * The sealer of `spine up` and `spine worker`: every `audit.sealEveryMs` it seals the
 * events committed since the last checkpoint (several processes may run one: each
 * checkpoint number is stored once), then hands the checkpoint to the witnesses.
 */
export class AuditSealer {
  private readonly opts: SealerOptions;
  private readonly loop: PollLoop;

  constructor(opts: SealerOptions) {
    this.opts = opts;
    this.loop = new PollLoop({ name: 'audit-sealer', clock: opts.clock, log: opts.log, pass: () => this.pass(), keepAlive: false });
  }

  start(): void {
    this.loop.start(this.opts.everyMs());
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One seal (tests call it directly); returns the checkpoint it stored, if any. */
  async sealOnce(): Promise<Checkpoint | null> {
    const keys = this.opts.keys();
    if (!keys?.privateKey) return null;
    const out = await seal(this.opts.audit, keys, this.opts.clock.now());
    if (out.sealed) await this.witness(out.sealed);
    return out.sealed;
  }

  private async pass(): Promise<number> {
    await this.sealOnce();
    return this.opts.everyMs();
  }

  private async witness(cp: Checkpoint): Promise<void> {
    const { file, url } = this.opts.witness();
    const line = JSON.stringify(cp);
    if (file) {
      try {
        appendFileSync(file, `${line}\n`);
      } catch (err) {
        this.opts.log.warn(`audit: cannot append checkpoint ${cp.n} to the witness file ${file}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (url) {
      try {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: line, signal: AbortSignal.timeout(10_000) });
        if (!res.ok) this.opts.log.warn(`audit: the witness at ${new URL(url).origin} answered ${res.status} for checkpoint ${cp.n}`);
      } catch (err) {
        this.opts.log.warn(`audit: cannot post checkpoint ${cp.n} to the witness at ${new URL(url).origin}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}
