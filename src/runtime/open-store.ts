import { PgBackend } from '../store/postgres/pg-backend.ts';
import { SqlStore } from '../store/sql/sql-store.ts';
import { SqliteBackend } from '../store/sqlite/sqlite-backend.ts';
import type { Store } from '../store/store.ts';
import { storeTarget, type OpenStoreOptions } from './store-url.ts';

export { DEFAULT_DB, loadStore, type OpenStoreOptions } from './store-url.ts';

/**
 * Picks the store adapter from a URL. This is the edge where adapters are wired in.
 * (`loadStore` does the same, loading only the backend it needs.)
 */
export function openStore(opts: OpenStoreOptions = {}): Store {
  const target = storeTarget(opts);
  const durability = opts.durability ?? 'strict';
  if (target.kind === 'sqlite') return new SqlStore(new SqliteBackend({ path: target.path, durability }));
  // strict: the server's synchronous_commit; fast: synchronous_commit=off for this store's sessions.
  return new SqlStore(new PgBackend({ url: target.url, durability, ...(opts.log ? { log: opts.log } : {}) }));
}
