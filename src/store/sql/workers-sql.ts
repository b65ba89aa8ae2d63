import type { WorkerInfo, WorkerStore } from '../store.ts';
import type { SqlBackend } from './backend.ts';

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
    async register(info: { id: string; pid: number; host: string }, now: number): Promise<void> {
      await db.transaction((tx) =>
        tx.run('INSERT INTO workers (id, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)', [info.id, info.pid, info.host, now, now]),
      );
    },

    async stop(id: string, now: number): Promise<void> {
      await db.transaction((tx) => tx.run('UPDATE workers SET stopped_at = ?, heartbeat_at = ? WHERE id = ?', [now, now, id]));
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
