import { HELD_TASK_STATES, sqlStateSet } from '../../engine/task-states.ts';
import type { WorkerInfo, WorkerStore } from '../store.ts';
import { insertAudit } from './audit-sql.ts';
import type { SqlBackend } from './backend.ts';
import { placeholders } from './where.ts';

const HELD = sqlStateSet(HELD_TASK_STATES);

/** Worker processes: registered at start, heartbeated with their leases, stopped at shutdown. */

interface WorkerRow {
  id: string;
  pid: number | string;
  host: string;
  started_at: number | string;
  heartbeat_at: number | string;
  stopped_at: number | string | null;
}

function toWorker(r: WorkerRow): WorkerInfo {
  return {
    id: r.id,
    pid: Number(r.pid),
    host: r.host,
    startedAt: Number(r.started_at),
    heartbeatAt: Number(r.heartbeat_at),
    stoppedAt: r.stopped_at === null ? null : Number(r.stopped_at),
  };
}

export function sqlWorkerStore(db: SqlBackend): WorkerStore {
  return {
    watchPeer: db.liveness.watch,

    async register(info: { id: string; pid: number; host: string }, now: number): Promise<void> {
      // Witnessed before the row exists: nobody may judge a registered worker dead for want of its lock.
      await db.liveness.hold(info.id);
      await db.transaction((tx) =>
        tx.run('INSERT INTO workers (id, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)', [info.id, info.pid, info.host, now, now]),
      );
    },

    async stop(id: string, now: number): Promise<void> {
      await db.transaction((tx) => tx.run('UPDATE workers SET stopped_at = ?, heartbeat_at = ? WHERE id = ?', [now, now, id]));
      await db.liveness.release(id);
    },

    async sweepLost(selfId: string, now: number): Promise<{ lost: string[]; live: string[] }> {
      const running = (await db.read.all<WorkerRow>('SELECT * FROM workers WHERE stopped_at IS NULL ORDER BY started_at, id')).map(toWorker);
      const dead = new Set(await db.liveness.dead(running.filter((w) => w.id !== selfId)));
      const lost = running.filter((w) => dead.has(w.id));
      if (lost.length > 0) {
        const ids = lost.map((w) => w.id);
        await db.transaction(async (tx) => {
          await tx.run(`UPDATE workers SET stopped_at = ? WHERE stopped_at IS NULL AND id IN (${placeholders(ids.length)})`, [now, ...ids]);
          // Leases end now; reclaimExpired (lease_expires_at < now) requeues the tasks, fenced as ever.
          await tx.run(`UPDATE tasks SET lease_expires_at = ? WHERE state IN ${HELD} AND lease_owner IN (${placeholders(ids.length)})`, [now - 1, ...ids]);
          await insertAudit(
            tx,
            now,
            lost.map((w) => ({ kind: 'worker.lost', actor: selfId, data: { worker: w.id, pid: w.pid, host: w.host, lastHeartbeatAt: w.heartbeatAt } })),
          );
        });
      }
      return { lost: lost.map((w) => w.id), live: running.filter((w) => !dead.has(w.id)).map((w) => w.id) };
    },

    async list(opts: { aliveSince?: number }): Promise<WorkerInfo[]> {
      const rows =
        opts.aliveSince === undefined
          ? await db.read.all<WorkerRow>('SELECT * FROM workers ORDER BY started_at')
          : await db.read.all<WorkerRow>('SELECT * FROM workers WHERE stopped_at IS NULL AND heartbeat_at >= ? ORDER BY started_at', [opts.aliveSince]);
      return rows.map(toWorker);
    },
  };
}
