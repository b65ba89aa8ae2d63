import { resolve } from 'node:path';
import { InvalidInputError } from '../core/errors.ts';
import { registerUrlSecrets } from '../core/redact.ts';
import type { Logger } from '../core/log.ts';
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
  /** SQLite: the marker remembering which store files were created (see SqliteOptions.marker). */
  marker?: string;
  /** SQLite: create the file even though the marker says it existed. */
  create?: boolean;
}

export type StoreTarget = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

/** Which backend a store URL names; a bad URL is refused naming --db. */
export function storeTarget(opts: OpenStoreOptions): StoreTarget {
  const url = opts.url ?? DEFAULT_DB;
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new InvalidInputError('--db', 'sqlite: needs a file path, e.g. sqlite:.spine/spine.db');
    return { kind: 'sqlite', path: path === ':memory:' ? path : resolve(opts.cwd ?? process.cwd(), path) };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    registerUrlSecrets(url); // its password never reaches a log, an error or the store
    return { kind: 'postgres', url };
  }
  throw new InvalidInputError('--db', `unsupported store URL "${url}": use sqlite:<path> or postgres://…`);
}

/**
 * Like openStore, but loads only the backend the URL names (the CLI: a SQLite
 * command does not load the PostgreSQL driver).
 */
export async function loadStore(opts: OpenStoreOptions = {}): Promise<Store> {
  const target = storeTarget(opts);
  const durability = opts.durability ?? 'strict';
  const { SqlStore } = await import('../store/sql/sql-store.ts');
  if (target.kind === 'sqlite') {
    const { SqliteBackend } = await import('../store/sqlite/sqlite-backend.ts');
    return new SqlStore(new SqliteBackend({ path: target.path, durability, ...(opts.marker ? { marker: opts.marker } : {}), ...(opts.create ? { create: true } : {}) }));
  }
  const { PgBackend } = await import('../store/postgres/pg-backend.ts');
  return new SqlStore(new PgBackend({ url: target.url, durability, ...(opts.log ? { log: opts.log } : {}) }));
}
