import { hostname } from 'node:os';
import { systemClock, type Clock } from '../core/clock.ts';
import { silentLogger } from '../core/log.ts';
import { PollLoop } from '../core/poll-loop.ts';
import type { Store } from '../store/store.ts';
import { aliveSince, liveWorkers, type LivenessProbe } from '../validation/worker-liveness.ts';

/** Whether a process exists on this machine (EPERM: it exists, but is not ours). */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function localProbe(now: number, heartbeatMs: number): LivenessProbe {
  return { now, heartbeatMs, host: hostname(), pidExists };
}

/** How many workers are alive now, by heartbeat and (on this host) by process. */
export async function countLiveWorkers(store: Store, now: number, heartbeatMs: number): Promise<number> {
  const probe = localProbe(now, heartbeatMs);
  return liveWorkers(await store.workers.list({ aliveSince: aliveSince(probe) }), probe).length;
}

/**
 * While `send --wait` waits: checks at once, then every heartbeat interval, whether any
 * worker is alive, and says so once each time the answer turns to none (a worker that
 * just died is seen at once on this host, by its heartbeats elsewhere).
 */
export class WorkerWatch {
  private readonly loop: PollLoop;
  private warned = false;

  constructor(store: Store, opts: { heartbeatMs: number; onNone: () => void; clock?: Clock }) {
    const clock = opts.clock ?? systemClock;
    this.loop = new PollLoop({
      name: 'worker watch',
      clock,
      log: silentLogger,
      keepAlive: false,
      pass: async () => {
        const alive = await countLiveWorkers(store, clock.now(), opts.heartbeatMs).catch(() => null);
        if (alive === 0 && !this.warned) opts.onNone();
        if (alive !== null) this.warned = alive === 0;
        return opts.heartbeatMs;
      },
    });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}
