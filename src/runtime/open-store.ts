import { resolve } from 'node:path';
import { InvalidInputError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { PgBackend } from '../store/postgres/pg-backend.ts';
import { SqlStore } from '../store/sql/sql-store.ts';
import { SqliteBackend } from '../store/sqlite/sqlite-backend.ts';
import type { Durability, Store } from '../store/store.ts';

export const DEFAULT_DB = 'sqlite:.spine/spine.db';

export interface OpenStoreOptions {
  /** `sqlite:<path>` (default `sqlite:.spine/spine.db`) or `postgres://…`. */
  url?: string;
  durability?: Durability;
  /** Base directory for relative SQLite paths. */
  cwd?: string;
  /** PostgreSQL: where connection losses and reconnects are reported (default: silent). */
  log?: Logger;
}

/** Picks the store adapter from a URL. This is the edge where adapters are wired in. */
export function openStore(opts: OpenStoreOptions = {}): Store {
  const url = opts.url ?? DEFAULT_DB;
  const durability = opts.durability ?? 'strict';
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new InvalidInputError('--db', 'sqlite: needs a file path, e.g. sqlite:.spine/spine.db');
    return new SqlStore(new SqliteBackend({ path: path === ':memory:' ? path : resolve(opts.cwd ?? process.cwd(), path), durability }));
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    // strict: the server's synchronous_commit; fast: synchronous_commit=off for this store's sessions.
    return new SqlStore(new PgBackend({ url, durability, ...(opts.log ? { log: opts.log } : {}) }));
  }
  throw new InvalidInputError('--db', `unsupported store URL "${url}": use sqlite:<path> or postgres://…`);
}
