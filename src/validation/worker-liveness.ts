import type { WorkerInfo } from '../store/store.ts';

/**
 * Whether a worker is alive, judged from its heartbeats and, for a worker on this
 * host, from its process: a worker that died a moment ago has a fresh heartbeat but
 * no process, and nothing else would tell for a heartbeat interval or two.
 */
export interface LivenessProbe {
  now: number;
  /** How often workers heartbeat (config `worker.heartbeatMs`). */
  heartbeatMs: number;
  /** This machine's host name, as workers register it. */
  host: string;
  /** Whether a process with this pid exists on this host. */
  pidExists: (pid: number) => boolean;
}

/** Heartbeats a worker may miss before it counts as gone (one late beat on a loaded machine is not death). */
export const MISSED_HEARTBEATS = 2;

/** The oldest heartbeat a live worker can have. */
export function aliveSince(p: Pick<LivenessProbe, 'now' | 'heartbeatMs'>): number {
  return p.now - (MISSED_HEARTBEATS + 1) * p.heartbeatMs;
}

export function isAlive(w: WorkerInfo, p: LivenessProbe): boolean {
  if (w.stoppedAt !== null) return false;
  if (w.heartbeatAt < aliveSince(p)) return false;
  return w.host !== p.host || p.pidExists(w.pid);
}

/** The live workers among those the store lists. */
export function liveWorkers(workers: readonly WorkerInfo[], p: LivenessProbe): WorkerInfo[] {
  return workers.filter((w) => isAlive(w, p));
}
