import { InvalidInputError } from '../core/errors.ts';
import { fuseRanks, searchTerms, type SearchMode } from '../core/memory.ts';
import type { FactQuery, SearchHit } from '../store/memory.ts';
import type { Store } from '../store/store.ts';
import type { Embed } from './embedder.ts';

/**
 * Memory search in its three modes, one results contract on both backends: `lexical`
 * (FTS5 bm25 / tsvector), `vector` (cosine over the embedder's vectors), `hybrid`
 * (Reciprocal Rank Fusion, k = 60, of the two lists). Both lists come from the store
 * with the reader's grants inside the query; fusion only reorders what they returned.
 */

export type MemorySearch = FactQuery & { query: string; k: number; scopes?: readonly string[]; mode?: SearchMode };

/** Each list is searched this deep before fusing, so a fact ranked low in one list can still rise. */
const FUSE_DEPTH = 4;

/** Hybrid when vectors are configured, else lexical. */
export function defaultMode(embed: Embed | null): SearchMode {
  return embed ? 'hybrid' : 'lexical';
}

export async function searchMemory(store: Store, embed: Embed | null, q: MemorySearch, now: number): Promise<SearchHit[]> {
  const mode = q.mode ?? defaultMode(embed);
  const { mode: _m, ...lexical } = q;
  if (mode === 'lexical') return store.memory.search(lexical, now);
  if (!embed) throw new InvalidInputError('mode', `${mode} search needs vectors: configure memory.embedder (docs/memory.md#vector-search)`);
  if (searchTerms(q.query).length === 0 || q.k <= 0) return [];
  const [vector] = await embed([q.query]);
  const near = { ...lexical, vector: vector! };
  if (mode === 'vector') return store.memory.searchVector(near, now);
  const depth = Math.max(q.k * FUSE_DEPTH, 20);
  const [words, meaning] = await Promise.all([store.memory.search({ ...lexical, k: depth }, now), store.memory.searchVector({ ...near, k: depth }, now)]);
  return fuseRanks([words, meaning], (h) => h.fact.id, q.k).map(({ item, score }) => ({ fact: item.fact, score }));
}
