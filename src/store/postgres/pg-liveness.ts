import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../../core/log.ts';
import type { WorkerIdentity, WorkerLiveness } from '../sql/backend.ts';

/** The 64-bit advisory lock key that witnesses a worker's life (signed, as PostgreSQL's bigint). */
export function workerLockKey(workerId: string): string {
  return createHash('sha256').update(`spine.worker:${workerId}`).digest().readBigInt64BE(0).toString();
}

// Of the given keys, those no session holds. A bigint advisory lock shows in pg_locks
// as classid = high 32 bits, objid = low 32 bits, objsubid = 1; locks are per
// database, so keys are hashed from worker ids, which are unique across schemas.
const UNHELD = `SELECT k::text AS key FROM unnest($1::bigint[]) AS k
  WHERE NOT EXISTS (
    SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.classid::bigint = ((k >> 32) & 4294967295) AND l.objid::bigint = (k & 4294967295))`;

export interface PgLivenessDeps {
  clientConfig: pg.ClientConfig;
  /** A read on the pool. */
  query: (text: string, values: unknown[]) => Promise<Array<Record<string, unknown>>>;
  log: Logger;
}

/**
 * One dedicated connection per process holds a session advisory lock for each
 * worker this process runs. When the process dies, the server ends the session and
 * the locks go with it, so any other worker sees at once that it is dead. If only the
 * connection breaks, it reconnects and takes the locks again; meanwhile others may
 * judge these workers dead and reclaim their tasks, which fencing makes safe.
 */
export class PgLiveness implements WorkerLiveness {
  private readonly deps: PgLivenessDeps;
  private readonly held = new Set<string>();
  private readonly watchers = new Set<pg.Client>();
  private client: pg.Client | null = null;
  private connecting: Promise<pg.Client> | null = null;
  private retry: NodeJS.Timeout | null = null;
  private backoffMs = 100;
  private closed = false;

  constructor(deps: PgLivenessDeps) {
    this.deps = deps;
  }

  async hold(workerId: string): Promise<void> {
    this.held.add(workerId);
    const client = await this.connection();
    await client.query('SELECT pg_advisory_lock($1::bigint)', [workerLockKey(workerId)]);
  }

  async release(workerId: string): Promise<void> {
    if (!this.held.delete(workerId)) return;
    const client = this.client;
    if (client) await client.query('SELECT pg_advisory_unlock($1::bigint)', [workerLockKey(workerId)]).catch(() => {});
    if (this.held.size === 0) await this.disconnect();
  }

  async dead(workers: readonly WorkerIdentity[]): Promise<string[]> {
    if (workers.length === 0) return [];
    const byKey = new Map(workers.map((w) => [workerLockKey(w.id), w.id]));
    const rows = await this.deps.query(UNHELD, [[...byKey.keys()]]);
    return rows.map((r) => byKey.get(String(r.key))).filter((id): id is string => id !== undefined);
  }

  /** A dedicated connection blocks on the peer's lock; the server grants it the moment the peer's session ends. */
  readonly watch = async (peerId: string, signal: AbortSignal): Promise<boolean> => {
    if (this.closed || signal.aborted) return false;
    const client = new pg.Client(this.deps.clientConfig);
    client.on('error', () => {});
    const end = () => void client.end().catch(() => {});
    signal.addEventListener('abort', end, { once: true });
    this.watchers.add(client);
    try {
      await client.connect();
      const key = workerLockKey(peerId);
      await client.query('SELECT pg_advisory_lock($1::bigint)', [key]);
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [key]);
      return !signal.aborted;
    } catch {
      return false;
    } finally {
      signal.removeEventListener('abort', end);
      this.watchers.delete(client);
      end();
    }
  };

  async close(): Promise<void> {
    for (const client of this.watchers) await client.end().catch(() => {});
    this.closed = true;
    this.held.clear();
    await this.disconnect();
  }

  private connection(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    return (this.connecting ??= this.connect().finally(() => (this.connecting = null)));
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client(this.deps.clientConfig);
    client.on('error', (err: Error) => this.lost(client, err));
    client.on('end', () => this.lost(client, null));
    await client.connect();
    this.client = client;
    this.backoffMs = 100;
    return client;
  }

  private lost(client: pg.Client, err: Error | null): void {
    if (this.client !== client) return;
    this.client = null;
    client.end().catch(() => {});
    this.deps.log.warn('PostgreSQL worker-liveness connection lost; taking the locks again', { error: err?.message ?? 'connection ended', retryInMs: this.backoffMs });
    this.scheduleRelock();
  }

  private scheduleRelock(): void {
    if (this.closed || this.held.size === 0 || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.relock();
    }, this.backoffMs);
    this.retry.unref();
    this.backoffMs = Math.min(this.backoffMs * 2, 5_000);
  }

  private async relock(): Promise<void> {
    if (this.closed) return;
    try {
      const client = await this.connection();
      for (const id of this.held) await client.query('SELECT pg_advisory_lock($1::bigint)', [workerLockKey(id)]);
    } catch {
      const client = this.client;
      this.client = null;
      if (client) await client.end().catch(() => {});
      this.scheduleRelock();
    }
  }

  private async disconnect(): Promise<void> {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    const client = this.client;
    this.client = null;
    if (client) await client.end().catch(() => {});
  }
}
