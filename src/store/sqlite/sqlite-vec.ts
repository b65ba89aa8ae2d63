import { createRequire } from 'node:module';
import type { DatabaseSync } from 'node:sqlite';

/**
 * The sqlite-vec extension (the `sqlite-vec` npm package), for memory's vector search.
 * It is optional: when the package or its platform binary is missing, or it will not
 * load, a config that asks for an embedder is refused at start (memory/vectors.ts).
 * It is loaded on first use, not at open: a store without vectors pays nothing for it
 * (an A/B under heavy load suggested lexical search ran slower with it loaded). Extension
 * loading is on only for the moment of loading, so SQL can never load another.
 */

const require = createRequire(import.meta.url);

/** Whether the package is installed (the capability); loading it is `loadSqliteVec`. */
export function sqliteVecInstalled(): boolean {
  try {
    require.resolve('sqlite-vec');
    return true;
  } catch {
    return false;
  }
}

/** Loads sqlite-vec into a connection opened with `allowExtension`; returns why it failed, or null. */
export function loadSqliteVec(db: DatabaseSync): string | null {
  try {
    db.enableLoadExtension(true);
    const vec = require('sqlite-vec') as { getLoadablePath(): string };
    db.loadExtension(vec.getLoadablePath());
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    db.enableLoadExtension(false);
  }
}
