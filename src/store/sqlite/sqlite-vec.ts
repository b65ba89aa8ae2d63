import { createRequire } from 'node:module';
import type { DatabaseSync } from 'node:sqlite';

/**
 * Loads the sqlite-vec extension (the `sqlite-vec` npm package) into a connection, for
 * memory's vector search. It is optional: when the package or its platform binary is
 * missing, or the extension will not load, the store simply has no vectors capability
 * and a config that asks for an embedder is refused at start (memory/vectors.ts).
 * Extension loading is switched off again at once, so SQL can never load another.
 */
export function loadSqliteVec(db: DatabaseSync): string | null {
  try {
    const vec = createRequire(import.meta.url)('sqlite-vec') as { getLoadablePath(): string };
    db.loadExtension(vec.getLoadablePath());
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    db.enableLoadExtension(false);
  }
}
