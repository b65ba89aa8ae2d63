import pg from 'pg';
import type { Logger } from '../../core/log.ts';
import { quoteIdent } from './pg-config.ts';

export interface ListenerDeps {
  clientConfig: pg.ClientConfig;
  channel: string;
  onNotify: (payload: string) => void;
  /** The connection came back after a loss: notifications may have been missed meanwhile. */
  onReconnected: () => void;
  log: Logger;
}

/**
 * One dedicated connection that LISTENs on the store's channel. It reconnects with
 * backoff whenever the connection breaks (server restart, pg_terminate_backend) and
 * then reports `onReconnected`, so waiting workers look for work they may have missed.
 */
export class PgListener {
  private readonly deps: ListenerDeps;
  private current: pg.Client | null = null;
  private connected = false;
  private everConnected = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoffMs = 100;

  constructor(deps: ListenerDeps) {
    this.deps = deps;
  }

  get listening(): boolean {
    return this.connected;
  }

  /** Connects if not connected or connecting already. */
  start(): void {
    if (this.stopped || this.current || this.retryTimer) return;
    void this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.deps.clientConfig);
    this.current = client;
    client.on('error', (err: Error) => this.lost(client, err));
    client.on('end', () => this.lost(client, null));
    client.on('notification', (msg) => {
      if (msg.channel === this.deps.channel) this.deps.onNotify(msg.payload ?? '');
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(this.deps.channel)}`);
    } catch (err) {
      this.lost(client, err);
      return;
    }
    if (this.current !== client) return;
    if (this.stopped) {
      await client.end().catch(() => {});
      return;
    }
    this.connected = true;
    this.backoffMs = 100;
    if (this.everConnected) {
      this.deps.log.info('PostgreSQL LISTEN connection restored');
      this.deps.onReconnected();
    }
    this.everConnected = true;
  }

  private lost(client: pg.Client, err: unknown): void {
    if (this.current !== client) return;
    this.current = null;
    this.connected = false;
    client.end().catch(() => {});
    if (this.stopped) return;
    this.deps.log.warn('PostgreSQL LISTEN connection lost; reconnecting', {
      error: err instanceof Error ? err.message : 'connection ended',
      retryInMs: this.backoffMs,
    });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.start();
    }, this.backoffMs);
    this.retryTimer.unref();
    this.backoffMs = Math.min(this.backoffMs * 2, 5_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const client = this.current;
    this.current = null;
    this.connected = false;
    if (client) await client.end().catch(() => {});
  }
}
