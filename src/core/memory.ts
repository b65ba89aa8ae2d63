/**
 * The vocabulary of shared memory (the intelligence mesh), declared once: what a
 * scope looks like, how a grant pattern names scopes, the trust levels and conflict
 * strategies. The store turns resolved grants into SQL conditions (reads are checked
 * inside the query); policy checks write grants; the engine, gateway and CLI parse
 * scopes with the same grammar.
 */

/** Where a fact was learnt, from most to least trusted. */
export const FACT_TRUST = ['owner', 'agent', 'tool', 'external'] as const;
export type FactTrust = (typeof FACT_TRUST)[number];

/** How a compare-and-set that lost its race is resolved (per scope, by config). */
export const CONFLICT_STRATEGIES = ['reject', 'last-writer-wins', 'merge-json', 'agent', 'human'] as const;
export type ConflictStrategy = (typeof CONFLICT_STRATEGIES)[number];

/** The first segment of a scope path; `global` stands alone. */
export const SCOPE_KINDS = ['run', 'session', 'agent', 'team', 'tenant'] as const;

export const MAX_SCOPE_LENGTH = 256;
export const MAX_KEY_LENGTH = 256;
const SEGMENT = /^[A-Za-z0-9._:@+=-]+$/;

/** Why `scope` is not a scope path, or null when it is one: `global`, or `<kind>/<name>[/<sub>…]`. */
export function scopeProblem(scope: string): string | null {
  if (scope === 'global') return null;
  if (scope.length === 0) return 'a scope cannot be empty';
  if (scope.length > MAX_SCOPE_LENGTH) return `a scope is at most ${MAX_SCOPE_LENGTH} characters`;
  const segs = scope.split('/');
  const kind = segs[0]!;
  if (!(SCOPE_KINDS as readonly string[]).includes(kind)) return `unknown scope form "${scope}": a scope is "global" or starts with ${SCOPE_KINDS.map((k) => `${k}/`).join(', ')}`;
  if (segs.length < 2) return `scope "${scope}" needs a name after "${kind}/"`;
  for (const s of segs.slice(1)) if (!SEGMENT.test(s)) return `scope "${scope}": segment "${s}" must be letters, digits or . _ : @ + = -`;
  return null;
}

export function keyProblem(key: string): string | null {
  if (key.length === 0) return 'a key cannot be empty';
  if (key.length > MAX_KEY_LENGTH) return `a key is at most ${MAX_KEY_LENGTH} characters`;
  return null;
}

/** Who reads or writes: `self` in a grant is the agent, `run/*` its own run, `session/*` its own session. */
export interface MemoryActor {
  agent: string;
  runId: string | null;
  sessionKey: string | null;
}

/** A resolved grant: every scope (`all`), one scope (`exact`), or a scope and everything under it (`tree`). */
export type ScopeMatch = { all: true } | { exact: string } | { tree: string };

/** Why a grant pattern is malformed (config), or null. Patterns: `*`, a scope, or a scope followed by `/*`. */
export function grantPatternProblem(pattern: string): string | null {
  if (pattern === '*') return null;
  const base = pattern.endsWith('/*') ? pattern.slice(0, -2) : pattern;
  if (base.includes('*')) return `memory grant "${pattern}": "*" may only stand alone or end the pattern as "/*"`;
  if (base === 'run' || base === 'session') return null;
  // `team/*`: every scope of a kind.
  if (base !== pattern && (SCOPE_KINDS as readonly string[]).includes(base)) return null;
  return scopeProblem(base.replace(/(^|\/)self(\/|$)/, '$1x$2'));
}

/**
 * Resolves a grant pattern for an actor. `agent/self/*` → `agent/<me>` and below;
 * `run/*` → the actor's run and below; `session/*` → its session and below (nothing
 * when it has none). Returns null when the pattern grants nothing to this actor.
 */
export function resolveGrant(pattern: string, who: MemoryActor): ScopeMatch | null {
  if (pattern === '*') return { all: true };
  const tree = pattern.endsWith('/*');
  let base = tree ? pattern.slice(0, -2) : pattern;
  if (base === 'run' || base.startsWith('run/self')) {
    if (!who.runId) return null;
    base = base === 'run' ? `run/${who.runId}` : base.replace('run/self', `run/${who.runId}`);
  } else if (base === 'session' || base.startsWith('session/self')) {
    if (!who.sessionKey) return null;
    base = base === 'session' ? `session/${who.sessionKey}` : base.replace('session/self', `session/${who.sessionKey}`);
  } else base = base.replace(/^agent\/self(\/|$)/, `agent/${who.agent}$1`);
  return tree ? { tree: base } : { exact: base };
}

export function resolveGrants(patterns: readonly string[], who: MemoryActor): ScopeMatch[] {
  return patterns.map((p) => resolveGrant(p, who)).filter((m): m is ScopeMatch => m !== null);
}

export function scopeMatches(m: ScopeMatch, scope: string): boolean {
  if ('all' in m) return true;
  if ('exact' in m) return scope === m.exact;
  return scope === m.tree || scope.startsWith(`${m.tree}/`);
}

export function scopeAllowed(grants: readonly ScopeMatch[], scope: string): boolean {
  return grants.some((g) => scopeMatches(g, scope));
}

/** Per-agent memory grants: denied by default. */
export interface MemoryGrants {
  read: readonly string[];
  write: readonly string[];
}

export const NO_MEMORY_GRANTS: MemoryGrants = { read: [], write: [] };

/** The words of a search query: letters and digits, lower-cased, at most 32 (both backends search the same terms). */
export function searchTerms(query: string): string[] {
  const words = query.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return [...new Set(words)].slice(0, 32);
}

/**
 * `merge-json`: the write applied to the current value as a JSON merge patch
 * (RFC 7386): objects merge deeply, `null` deletes a member, arrays and scalars replace.
 */
export function mergeJson(current: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const base: Record<string, unknown> = current !== null && typeof current === 'object' && !Array.isArray(current) ? { ...(current as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete base[k];
    else base[k] = mergeJson(base[k], v);
  }
  return base;
}

/** A scope pattern as written in config (`*`, `team/research`, `team/*`), without `self` or `run` resolution. */
export function literalPattern(pattern: string): ScopeMatch {
  if (pattern === '*') return { all: true };
  return pattern.endsWith('/*') ? { tree: pattern.slice(0, -2) } : { exact: pattern };
}

/** An agent's own scope in an action: `agent/self/…`, `run/self/…`, `session/self/…` name its own agent, run, session. */
export function resolveScope(scope: string, who: MemoryActor): string {
  const m = /^(agent|run|session)\/self(\/.*)?$/.exec(scope);
  if (!m) return scope;
  const own = m[1] === 'agent' ? who.agent : m[1] === 'run' ? who.runId : who.sessionKey;
  return own ? `${m[1]}/${own}${m[2] ?? ''}` : scope;
}

/** A grant list as the agent is told it (its turn input): resolved, `*` kept. */
export function describeGrants(patterns: readonly string[], who: MemoryActor): string[] {
  return resolveGrants(patterns, who).map((m) => ('all' in m ? '*' : 'exact' in m ? m.exact : `${m.tree}/*`));
}

/** How a search ranks: words (FTS5 / tsvector), meaning (embeddings), or both fused. */
export const SEARCH_MODES = ['lexical', 'vector', 'hybrid'] as const;
export type SearchMode = (typeof SEARCH_MODES)[number];

/** Reciprocal Rank Fusion's constant (Cormack et al.): damps the weight of the very top ranks. */
export const RRF_K = 60;

/**
 * Reciprocal Rank Fusion: each list votes 1 / (RRF_K + rank) for its items (rank from
 * 1); the fused order is by total vote, ties by id, so both backends agree.
 */
export function fuseRanks<T>(lists: ReadonlyArray<readonly T[]>, id: (item: T) => string, k: number): Array<{ item: T; score: number }> {
  const acc = new Map<string, { item: T; score: number }>();
  for (const list of lists) {
    list.forEach((item, i) => {
      const key = id(item);
      const cur = acc.get(key) ?? { item, score: 0 };
      cur.score += 1 / (RRF_K + i + 1);
      acc.set(key, cur);
    });
  }
  return [...acc.entries()]
    .sort((a, b) => b[1].score - a[1].score || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, k)
    .map(([, v]) => v);
}
