import { InvalidInputError, InvalidScopeError, InvalidStateError, NotFoundError, SpineError, ValueTooLargeError } from '../core/errors.ts';
import { CONFLICT_OPTIONS, resolveByPick, writeResolution } from './merge-queue.ts';
import { CONFLICT_STRATEGIES, keyProblem, scopeProblem, type ScopeMatch, type SearchMode } from '../core/memory.ts';
import type { Embed } from './embedder.ts';
import { searchMemory } from './search.ts';
import type { Json } from '../core/types.ts';
import { parseDuration } from '../policy/duration.ts';
import type { ConflictState, FactVersion, MemoryConflict, SearchHit, WriteOutcome } from '../store/memory.ts';
import type { Store } from '../store/store.ts';
import { DEFAULT_MEMORY, scopePolicyFor, type MemorySettings } from './settings.ts';

/**
 * Shared memory as operators reach it (`spine memory …`, `/v1/memory/…`, MCP): an
 * operator reads every scope of one tenant, writes with trust `owner`, and forgets.
 * Its input is checked here with the same rules a `remember` meets at the boundary's
 * contract stage (scope form, key, sizes); nothing is written when one fails.
 */

const EVERYTHING: ScopeMatch[] = [{ all: true }];

export interface OperatorScope {
  tenant: string;
  /** Read grants; operators (admin, operator tokens, the CLI) read everything in their tenant. */
  grants?: readonly ScopeMatch[];
}

export function checkScopeKey(scope: string, key?: string): void {
  const problem = scopeProblem(scope) ?? (key === undefined ? null : keyProblem(key));
  if (problem) throw new InvalidScopeError(problem);
}

export function parseAsOf(value: string | number | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidInputError('asOf', `"${value}" is not a time (epoch ms or an ISO date)`);
  return n;
}

export async function searchFacts(
  store: Store,
  embed: Embed | null,
  who: OperatorScope,
  q: { query: string; k?: number; scope?: string; asOf?: number; mode?: SearchMode },
  now: number,
): Promise<SearchHit[]> {
  if (q.scope) checkScopeKey(q.scope);
  return searchMemory(
    store,
    embed,
    {
      tenant: who.tenant,
      grants: who.grants ?? EVERYTHING,
      query: q.query,
      k: q.k ?? 10,
      ...(q.scope ? { scopes: [q.scope] } : {}),
      ...(q.asOf === undefined ? {} : { asOf: q.asOf }),
      ...(q.mode ? { mode: q.mode } : {}),
    },
    now,
  );
}

export async function getFact(store: Store, who: OperatorScope, scope: string, key: string, asOf: number | undefined, now: number): Promise<FactVersion | null> {
  checkScopeKey(scope, key);
  return store.memory.get({ tenant: who.tenant, grants: who.grants ?? EVERYTHING, scope, key, ...(asOf === undefined ? {} : { asOf }) }, now);
}

export async function factHistory(store: Store, who: OperatorScope, scope: string, key: string): Promise<FactVersion[]> {
  checkScopeKey(scope, key);
  return store.memory.history({ tenant: who.tenant, grants: who.grants ?? EVERYTHING, scope, key });
}

export interface OperatorPut {
  scope: string;
  key: string;
  value: Json;
  text?: string;
  expectedVersion?: number;
  ttl?: string | number;
  sources?: string[];
}

export async function putFact(store: Store, settings: MemorySettings | null, who: OperatorScope & { actor: string }, w: OperatorPut, now: number): Promise<WriteOutcome> {
  const s = settings ?? DEFAULT_MEMORY;
  checkScopeKey(w.scope, w.key);
  const bytes = Buffer.byteLength(JSON.stringify(w.value));
  if (bytes > s.maxValueBytes) throw new ValueTooLargeError('value', bytes, s.maxValueBytes);
  if (w.text !== undefined && Buffer.byteLength(w.text) > s.maxTextBytes) throw new ValueTooLargeError('text', Buffer.byteLength(w.text), s.maxTextBytes);
  let expiresAt: number | null = null;
  if (w.ttl !== undefined) {
    const ms = parseDuration(w.ttl);
    if (ms === null) throw new InvalidInputError('ttl', `"${w.ttl}" is not a duration (e.g. 30s, 15m, 4h, 7d)`);
    expiresAt = now + ms;
  }
  return store.memory.write(
    {
      tenant: who.tenant,
      scope: w.scope,
      key: w.key,
      value: w.value,
      text: w.text ?? null,
      ...(w.expectedVersion === undefined ? {} : { expectedVersion: w.expectedVersion }),
      expiresAt,
      sources: w.sources ?? [],
      trust: 'owner',
      writtenBy: { agent: null, run: null, task: null, turn: null, actor: who.actor },
      onConflict: scopePolicyFor(s, w.scope).onConflict,
      embed: s.embedder !== null && w.text !== undefined,
    },
    now,
  );
}

export interface ForgetRequest {
  run?: string;
  agent?: string;
  source?: string;
  dryRun: boolean;
}

export async function forgetFacts(store: Store, who: OperatorScope & { actor: string }, r: ForgetRequest, now: number): Promise<FactVersion[]> {
  const given = [r.run, r.agent, r.source].filter((v) => v !== undefined && v !== '');
  if (given.length !== 1) throw new InvalidInputError('forget', 'name exactly one of --run, --agent or --source');
  return store.memory.forget(
    { tenant: who.tenant, ...(r.run ? { run: r.run } : {}), ...(r.agent ? { agent: r.agent } : {}), ...(r.source ? { source: r.source } : {}) },
    { dryRun: r.dryRun, actor: who.actor },
    now,
  );
}

export function listConflicts(store: Store, who: OperatorScope, state: ConflictState | undefined, limit = 100): Promise<MemoryConflict[]> {
  return store.memory.conflicts({ tenant: who.tenant, ...(state ? { state } : {}), limit });
}

export interface ResolveRequest {
  /** 1: the write that lost its race; 2: keep the current version (memory/merge-queue.ts conflictOptions). */
  pick?: number;
  /** Or the operator's own value (and text). */
  value?: Json;
  text?: string;
}

/**
 * An operator ends an open conflict (`spine memory conflicts resolve`, HTTP): a picked
 * candidate or their own value, written with compare-and-set and audited; the
 * conflict's approval, if any, is decided with it.
 */
export async function resolveConflict(store: Store, settings: MemorySettings | null, who: OperatorScope & { actor: string }, id: string, r: ResolveRequest, now: number): Promise<MemoryConflict> {
  const s = settings ?? DEFAULT_MEMORY;
  if ((r.pick === undefined) === (r.value === undefined)) throw new InvalidInputError('resolve', 'name exactly one of --pick <n> or --value <file.json>');
  if (r.pick !== undefined && !(Number.isInteger(r.pick) && r.pick >= 1 && r.pick <= CONFLICT_OPTIONS)) throw new InvalidInputError('pick', `"${r.pick}" is not an option: 1 (the write that lost its race) or 2 (keep the current version)`);
  if (r.value !== undefined) {
    const bytes = Buffer.byteLength(JSON.stringify(r.value));
    if (bytes > s.maxValueBytes) throw new ValueTooLargeError('value', bytes, s.maxValueBytes);
  }
  if (r.text !== undefined && Buffer.byteLength(r.text) > s.maxTextBytes) throw new ValueTooLargeError('text', Buffer.byteLength(r.text), s.maxTextBytes);
  const c = await store.memory.conflict(id);
  if (!c || c.tenant !== who.tenant) throw new NotFoundError('conflict', id);
  if (c.state !== 'open') throw new InvalidStateError(`conflict ${id} is ${c.state}, not open: nothing to resolve`);
  const how = r.pick !== undefined ? `option ${r.pick}` : 'an operator’s value';
  const done =
    r.pick !== undefined ? await resolveByPick(store, s, c, r.pick, who.actor, how, now) : await writeResolution(store, s, c, r.value ?? null, r.text ?? c.proposedText, who.actor, how, now);
  if (done.outcome?.kind === 'conflict') {
    throw new SpineError('MEMORY_CONFLICT', `${c.scope} ${c.key} was written again while resolving conflict ${id}; it is still open, try again`, { details: { conflict: id } });
  }
  if (c.approvalId) {
    try {
      await store.approvals.decide(c.approvalId, { approve: true, actor: who.actor, reason: r.pick !== undefined ? `option ${r.pick}` : 'resolved with an operator’s value' }, now);
    } catch (err) {
      // Decided meanwhile: the conflict is already resolved by this call, which is what counts.
      if (!(err instanceof InvalidStateError)) throw err;
    }
  }
  return done.conflict;
}

export { CONFLICT_STRATEGIES };
