import { VectorsUnavailableError } from '../core/errors.ts';
import type { Store } from '../store/store.ts';
import type { MemorySettings } from './settings.ts';

/**
 * A config that asks for vectors (memory.embedder) on a store that cannot search
 * them is refused when a process starts, naming the fix, rather than failing each
 * search later: SQLite needs the sqlite-vec package, PostgreSQL the pgvector extension.
 */
export async function requireVectors(store: Store, settings: MemorySettings): Promise<void> {
  if (!settings.embedder) return;
  const fix = await store.memory.vectorSupport();
  if (fix) throw new VectorsUnavailableError(fix);
}
