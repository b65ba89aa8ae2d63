import { digest } from '../core/digest.ts';
import { InvalidInputError } from '../core/errors.ts';
import { describeGrants, resolveGrants, resolveScope, type MemoryActor } from '../core/memory.ts';
import type { ActionResult, Json, RecallAction, RememberAction } from '../core/types.ts';
import { hitsForTurn, factForTurn, renderQuery } from '../memory/recall.ts';
import { writeLedgerEntry } from '../memory/outcome.ts';
import { scopePolicyFor } from '../memory/settings.ts';
import { embedderOf, type Embed } from '../memory/embedder.ts';
import { searchMemory } from '../memory/search.ts';
import { parseDuration } from '../policy/duration.ts';
import type { AuditEntry, ClaimedTask, EffectRecord, Store } from '../store/store.ts';
import { effectKey } from '../store/store.ts';
import type { Registry } from './options.ts';

/**
 * The engine's side of shared memory: who a task is to memory, the facts its turn is
 * handed (declared recall), and running `remember` (an effect, once under its key,
 * after the boundary let it through) and `recall` (a read under the agent's read
 * grants, applied in the store's query).
 */

export interface MemoryEnv {
  store: Store;
  registry: Registry;
  workerId: string;
  now: () => number;
}

export function memoryActor(claimed: ClaimedTask): MemoryActor {
  return { agent: claimed.task.agent, runId: claimed.task.runId, sessionKey: claimed.session?.key ?? null };
}

/** The memory grants an agent is told in its turn input, resolved for this task. */
export function memoryGrantsForTurn(registry: Registry, claimed: ClaimedTask): { read: string[]; write: string[] } | undefined {
  const g = registry.policy.memoryGrants(claimed.task.agent);
  if (g.read.length === 0 && g.write.length === 0) return undefined;
  const who = memoryActor(claimed);
  return { read: describeGrants(g.read, who), write: describeGrants(g.write, { ...who, sessionKey: null }) };
}

/** The agent's declared recall, searched for this turn: each hit once, best first per declaration. */
export async function declaredRecall(env: MemoryEnv, claimed: ClaimedTask): Promise<Json[]> {
  const spec = env.registry.agents.get(claimed.task.agent);
  if (!spec || spec.recall.length === 0) return [];
  const who = memoryActor(claimed);
  const grants = resolveGrants(env.registry.policy.memoryGrants(who.agent).read, who);
  if (grants.length === 0) return [];
  const seen = new Set<string>();
  const out: Json[] = [];
  for (const r of spec.recall) {
    const query = renderQuery(r.query, { input: claimed.task.input, agent: who.agent });
    const hits = await searchMemory(
      env.store,
      embedderFor(env.registry),
      { tenant: claimed.tenant, grants, query, k: r.k, ...(r.scope ? { scopes: [resolveScope(r.scope, who)] } : {}), ...(r.mode ? { mode: r.mode } : {}) },
      env.now(),
    );
    for (const h of hitsForTurn(hits.filter((x) => !seen.has(x.fact.id)))) out.push(h);
    for (const h of hits) seen.add(h.fact.id);
  }
  return out;
}

/** The configured embedder agent as a function of texts (null: no vector search). */
export function embedderFor(registry: Registry): Embed | null {
  return embedderOf(registry.memory.embedder, (name) => registry.agents.get(name));
}

type LedgerLike = Pick<EffectRecord, 'state' | 'result' | 'error'>;

export function memoryLedgerResult(index: number, action: RememberAction, rec: LedgerLike): ActionResult {
  const head = { index, type: action.type, ...(action.id === undefined ? {} : { id: action.id }) };
  return rec.state === 'completed' ? { ...head, ok: true, value: rec.result } : { ...head, ok: false, error: rec.error! };
}

/** A remember the boundary let through: written once under its effect key (a repeat replays the ledger). */
export async function runRemember(env: MemoryEnv, claimed: ClaimedTask, n: number, index: number, action: RememberAction, scope: string): Promise<ActionResult> {
  const { task } = claimed;
  const key = effectKey(task.runId, task.id, n, index);
  const now = env.now();
  let expiresAt: number | null = null;
  if (action.ttl !== undefined) {
    const ms = parseDuration(action.ttl);
    if (ms === null) return { index, type: 'remember', ...(action.id === undefined ? {} : { id: action.id }), ok: false, error: new InvalidInputError('ttl', `"${action.ttl}" is not a duration (e.g. 3600000, 30s, 15m, 4h, 7d)`).toInfo() };
    expiresAt = now + ms;
  }
  const outcome = await env.store.memory.write(
    {
      tenant: claimed.tenant,
      scope,
      key: action.key,
      value: action.value,
      text: action.text ?? null,
      ...(action.expectedVersion === undefined ? {} : { expectedVersion: action.expectedVersion }),
      expiresAt,
      sources: action.sources ?? [],
      trust: 'agent',
      writtenBy: { agent: task.agent, run: task.runId, task: task.id, turn: n, actor: env.workerId },
      onConflict: scopePolicyFor(env.registry.memory, scope).onConflict,
      embed: env.registry.memory.embedder !== null && action.text !== undefined,
    },
    now,
    { effect: { key, runId: task.runId, taskId: task.id, turn: n, action: index, tool: 'remember', inputDigest: digest({ ...action, scope }) } },
  );
  if (outcome.kind === 'replayed') return memoryLedgerResult(index, action, outcome.effect);
  const entry = writeLedgerEntry(outcome);
  return memoryLedgerResult(index, action, 'result' in entry ? { state: 'completed', result: entry.result, error: null } : { state: 'failed', result: null, error: entry.error });
}

/** A recall: one fact by scope and key, or a search; only what the agent's read grants cover is ever read. */
export async function runRecall(env: MemoryEnv, claimed: ClaimedTask, index: number, action: RecallAction, audit: AuditEntry[]): Promise<ActionResult> {
  const who = memoryActor(claimed);
  const grants = resolveGrants(env.registry.policy.memoryGrants(who.agent).read, who);
  const head = { index, type: 'recall' as const, ...(action.id === undefined ? {} : { id: action.id }) };
  const base = { runId: claimed.task.runId, taskId: claimed.task.id, agent: who.agent, actor: env.workerId };
  const asOf = action.asOf === undefined ? {} : { asOf: action.asOf };
  if (action.key !== undefined && action.scope !== undefined) {
    const scope = resolveScope(action.scope, who);
    const fact = await env.store.memory.get({ tenant: claimed.tenant, grants, scope, key: action.key, ...asOf }, env.now());
    audit.push({ ...base, kind: 'memory.recalled', data: { scope, key: action.key, found: fact ? [fact.id] : [] } });
    return { ...head, ok: true, value: fact ? factForTurn(fact) : null };
  }
  const query = action.query ?? '';
  const hits = await searchMemory(
    env.store,
    embedderFor(env.registry),
    { tenant: claimed.tenant, grants, query, k: action.k ?? 5, ...asOf, ...(action.scope ? { scopes: [resolveScope(action.scope, who)] } : {}), ...(action.mode ? { mode: action.mode } : {}) },
    env.now(),
  );
  audit.push({ ...base, kind: 'memory.recalled', data: { query, found: hits.map((h) => h.fact.id) } });
  return { ...head, ok: true, value: hitsForTurn(hits) };
}
