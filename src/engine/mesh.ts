import { digest } from '../core/digest.ts';
import { MeshRefusedError, SpineError, toErrorInfo } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import { meshBucketKey, meshTargets, type MeshPath, type MeshRefusal } from '../core/mesh.ts';
import type { ActionResult, CallAgentAction, ErrorInfo, Json, TurnInput, TurnRecord } from '../core/types.ts';
import type { AuditEntry, ClaimedTask, Settlement, Store } from '../store/store.ts';
import { callAgent } from './agent-call.ts';
import type { Boundary, CrossingContext, Verdict } from './boundary.ts';
import type { Clock } from '../core/clock.ts';
import type { Registry } from './options.ts';
import { parseTurnResult } from './turn-result.ts';

/**
 * The mesh client (docs/mesh.md): a `call_agent` action over a declared path runs the
 * callee's turns right here, inside the caller's task — no child task, queue hop or
 * lease — and never leaves the audit trail:
 *
 *   mesh checks (declared pair, hop limit, cycle) → boundary (as a handoff: contracts,
 *   policy, gates; the callee's spend reserved on the caller's budgets) → the pair's rate
 *   token and the shadow `mesh.call`, one commit → the callee's turns → its output
 *   contract and the handoffResult gates → `mesh.reply`, committed with the caller's
 *   turn that receives the answer (so the caller never acts on an unrecorded answer).
 *
 * A call the mesh does not allow is refused and recorded as `mesh.refused` with the
 * caller's turn; it is never routed through the hub instead. A direct call has no
 * effects ledger, so the callee may only answer or call further down the mesh: anything with an effect is
 * the hub's work (hand off instead). A crash mid-call leaves `mesh.call` without
 * `mesh.reply`; the caller's turn is then retried as a whole, the call with it.
 */

/** What a direct call needs of the task runner's environment. */
export interface MeshEnv {
  store: Store;
  registry: Registry;
  boundary: Boundary;
  clock: Clock;
  workerId: string;
}

type Pause = Extract<Verdict, { effect: 'defer' | 'approve' | 'escalate' }>;

/** Where a call sits in its chain: its key, hop and the agents already on the chain (the task's agent first). */
interface Frame {
  key: string;
  hop: number;
  chain: readonly string[];
  /** The call id of the callee whose turn made this call (a nested call), else null. */
  parent: string | null;
}

export interface MeshCall {
  claimed: ClaimedTask;
  index: number;
  action: CallAgentAction;
  /** The action's effect key: its place in the run, and the call's idempotency key. */
  key: string;
  /** The caller turn's settlements: the callee's spend is settled with the caller's turn. */
  settle: Settlement[];
  /** The caller turn's audit: `mesh.reply` and refusals commit with the turn that receives them. */
  audit: AuditEntry[];
  stop: AbortSignal;
  /** An external agent's call through the shim (engine/mesh-shim.ts): its turn is in flight elsewhere, so the call cannot pause it. */
  external?: boolean;
}

/** Runs a task's `call_agent` action; a policy wait (approval, window, rate rule) pauses the caller like any action. */
export async function runMeshCall(env: MeshEnv, call: MeshCall): Promise<ActionResult | { pause: Pause }> {
  const { task } = call.claimed;
  const frame: Frame = { key: call.key, hop: 1, chain: [task.agent], parent: null };
  const out = await direct(env, call, task.agent, call.action, frame);
  if ('pause' in out) return out;
  return result(call.index, call.action, out);
}

/**
 * An external agent's call through the shim: the same path as a task's own call, except
 * that it cannot pause the task (a wait is refused). Its records are in `call.audit` and
 * its spend in `call.settle`, for the shim to commit before it answers.
 */
export async function runShimCall(env: MeshEnv, call: MeshCall): Promise<ActionResult> {
  const out = await runMeshCall(env, { ...call, external: true });
  // direct() refuses a wait for an external call, so it never pauses.
  if ('pause' in out) throw new Error('a shim call paused');
  return out;
}

/** The agents `agent` may call directly, for its turn input's grants. */
export function meshGrants(env: MeshEnv, agent: string): string[] {
  return meshTargets(env.registry.mesh ?? [], agent);
}

type Outcome = { ok: true; value: Json } | { ok: false; error: ErrorInfo };

function result(index: number, action: CallAgentAction, o: Outcome): ActionResult {
  const head = { index, type: 'call_agent' as const, ...(action.id === undefined ? {} : { id: action.id }) };
  return o.ok ? { ...head, ok: true, value: o.value } : { ...head, ok: false, error: o.error };
}

async function direct(env: MeshEnv, call: MeshCall, from: string, action: CallAgentAction, frame: Frame): Promise<Outcome | { pause: Pause }> {
  const { store, registry, boundary, clock } = env;
  const { task, tenant } = call.claimed;
  const base = { runId: task.runId, taskId: task.id, agent: from, actor: env.workerId };
  const to = action.agent;
  const where = { key: frame.key, from, to, hop: frame.hop, chain: [...frame.chain, to] };
  const refuse = (reason: MeshRefusal | 'boundary', error: ErrorInfo, audit: AuditEntry[] = []): Outcome => {
    call.audit.push(...audit, { ...base, kind: 'mesh.refused', data: { ...where, reason, code: error.code, ...(frame.parent ? { parent: frame.parent } : {}) } });
    return { ok: false, error };
  };

  const path = (registry.mesh ?? []).find((p) => p.from === from && p.to === to);
  const target = registry.agents.get(to);
  if (!path || !target) {
    const declared = meshTargets(registry.mesh ?? [], from);
    return refuse('undeclared', new MeshRefusedError('undeclared', `no mesh path ${from} → ${to} is declared (${from} may call: ${declared.join(', ') || 'none'}); hand off through the hub instead`, { from, to }).toInfo());
  }
  if (frame.hop > path.maxHops) {
    return refuse('hops', new MeshRefusedError('hops', `mesh path ${from} → ${to} allows ${path.maxHops} hop(s); this call is hop ${frame.hop}`, { from, to, hop: frame.hop, maxHops: path.maxHops }).toInfo());
  }
  if (frame.chain.includes(to)) {
    return refuse('cycle', new MeshRefusedError('cycle', `mesh call ${from} → ${to} would close a cycle (${[...frame.chain, to].join(' → ')})`, { from, to, chain: [...frame.chain, to] }).toInfo());
  }

  let input = action.input ?? null;
  const ctx: CrossingContext = { agent: from, runId: task.runId, taskId: task.id, tenant, actor: env.workerId, key: frame.key };
  const verdict = await boundary.call(ctx, target, input, action.contract);
  if (verdict.effect === 'deny') return refuse('boundary', verdict.error, verdict.audit);
  if (verdict.effect !== 'allow') {
    // The task's own call waits like any action; a callee's nested call, or a shim call from a turn in flight, cannot wait.
    if (frame.hop === 1 && !call.external) {
      call.audit.push(...verdict.audit);
      return { pause: verdict };
    }
    const inside = call.external ? `${from}'s turn in flight (a shim call)` : `${from}'s direct call`;
    return refuse('boundary', new SpineError('POLICY_DENIED', `a ${call.external ? '' : 'nested '}mesh call cannot wait (${verdict.effect}) inside ${inside}`, { details: { ruleId: 'ruleId' in verdict ? verdict.ruleId : null } }).toInfo(), verdict.audit);
  }
  if (verdict.value !== undefined) input = verdict.value;
  const reservation = verdict.reservation;
  const release = () => (reservation ? store.limits.settle({ ...reservation, micros: 0, tokens: 0 }, clock.now()) : Promise.resolve());

  // The pair's token and the shadow record: one commit, before anything is forwarded.
  const id = newId('call');
  const shadow: AuditEntry = { ...base, kind: 'mesh.call', digest: digest(input), data: { ...where, call: id, ...(frame.parent ? { parent: frame.parent } : {}) } };
  const taken = await store.limits.acquire(
    { takes: [bucket(path)], budgets: [], micros: 0, tokens: 0, reservationId: newId('rsv'), runId: task.runId, taskId: task.id, expiresAt: clock.now(), audit: [...verdict.audit, shadow] },
    clock.now(),
  );
  if (!taken.ok) {
    await release();
    const retryAt = taken.kind === 'rate' ? taken.retryAt : clock.now();
    return refuse('rate', new MeshRefusedError('rate', `mesh path ${from} → ${to} is over its ${path.maxPerMinute} calls per minute; next token at ${new Date(retryAt).toISOString()}`, { from, to, retryAt }).toInfo(), verdict.audit);
  }

  const started = clock.now();
  const answered = await forward(env, call, target.name, input, { ...frame, chain: [...frame.chain, to], parent: id }, id);
  const usage = answered.usage;
  if (reservation) {
    const tokens = usage.tokens ?? reservation.tokens;
    call.settle.push({ reservationId: reservation.reservationId, micros: usage.micros ?? reservation.micros, tokens });
  }

  const after: AuditEntry[] = [];
  let outcome: Outcome = answered.outcome;
  if (outcome.ok) {
    // The callee's output contract and gates, then the gates on a result joining its caller: as on a handoff.
    const own = await boundary.output({ ...ctx, agent: to }, target, outcome.value);
    after.push(...own.audit);
    if (own.effect !== 'allow') outcome = { ok: false, error: own.effect === 'deny' ? { ...own.error, retryable: false } : cannotWait(to, own.effect) };
    else {
      const value = own.value ?? outcome.value;
      const back = await boundary.handoffResult(ctx, to, value);
      after.push(...back.audit);
      outcome = back.effect === 'deny' ? { ok: false, error: back.error } : back.effect !== 'allow' ? { ok: false, error: cannotWait(to, back.effect) } : { ok: true, value: back.value ?? value };
    }
  }
  const reply: AuditEntry = {
    ...base,
    kind: 'mesh.reply',
    digest: digest(outcome.ok ? outcome.value : outcome.error),
    data: {
      key: frame.key,
      call: id,
      from,
      to,
      hop: frame.hop,
      ok: outcome.ok,
      ...(outcome.ok ? {} : { code: outcome.error.code }),
      turns: answered.turns,
      ms: clock.now() - started,
      ...(usage.micros !== undefined ? { usage: { micros: usage.micros, ...(usage.tokens === undefined ? {} : { tokens: usage.tokens }) } } : {}),
    },
  };
  // Committed with the caller's turn that receives the answer: the caller never acts on an answer that is not on record.
  call.audit.push(...after, reply);
  return outcome;
}

/** A gate on the answer that wants a person: a direct call cannot wait for one, so the answer is refused. */
function cannotWait(agent: string, effect: string): ErrorInfo {
  return new SpineError('GATE_BLOCKED', `${agent}'s answer needs a wait (${effect}), and a direct call cannot wait: hand off through the hub for that`).toInfo();
}

function bucket(path: MeshPath) {
  const key = meshBucketKey(path.from, path.to);
  return { ruleId: key, key, capacity: path.maxPerMinute, refillPerMs: path.maxPerMinute / 60_000, onExceeded: 'fail' as const };
}

interface Answer {
  outcome: Outcome;
  turns: number;
  usage: { micros?: number; tokens?: number };
}

/** The callee's turns: it answers, or calls further down the mesh and answers on a later turn. */
async function forward(env: MeshEnv, call: MeshCall, agent: string, input: Json, frame: Frame, id: string): Promise<Answer> {
  const { registry, clock } = env;
  const spec = registry.agents.get(agent)!;
  const { task } = call.claimed;
  const history: TurnRecord[] = [];
  let results: ActionResult[] = [];
  const usage: Answer['usage'] = {};
  for (let n = 1; n <= registry.limits.maxTurns; n++) {
    const turn: TurnInput = {
      protocol: 'spine.turn/1',
      // The callee sees the call as its task: same run, the caller's task as its parent, the call id as its id.
      task: { id, runId: task.runId, agent, parentId: task.id, depth: task.depth + frame.hop, input, turn: n, attempt: 1, lastError: null },
      session: null,
      history: structuredClone(history),
      results: structuredClone(results),
      memory: [],
      grants: { tools: [], agents: [], mesh: meshTargets(registry.mesh ?? [], agent) },
    };
    let answer;
    try {
      answer = parseTurnResult(agent, await callAgent(clock, spec, turn, call.stop));
    } catch (err) {
      // No durable retry inside a direct call: the failure is the caller's result.
      if (call.stop.aborted) throw err;
      return { outcome: { ok: false, error: { ...toErrorInfo(err, 'AGENT_FAILED'), retryable: false } }, turns: n, usage };
    }
    if (answer.usage?.costUsd !== undefined) usage.micros = (usage.micros ?? 0) + Math.round(answer.usage.costUsd * 1e6);
    if (answer.usage?.inputTokens !== undefined || answer.usage?.outputTokens !== undefined) {
      usage.tokens = (usage.tokens ?? 0) + (answer.usage.inputTokens ?? 0) + (answer.usage.outputTokens ?? 0);
    }
    const actions = answer.actions ?? [];
    const effectful = actions.find((a) => a.type !== 'call_agent');
    if (effectful) {
      const error = new MeshRefusedError('effects', `${agent} asked for a ${effectful.type} inside a direct call; a direct call has no effects ledger: hand off through the hub for that`, { agent, action: effectful.type }).toInfo();
      return { outcome: { ok: false, error }, turns: n, usage };
    }
    if (answer.output !== undefined && actions.length === 0) return { outcome: { ok: true, value: answer.output }, turns: n, usage };
    const turnResults: ActionResult[] = [];
    for (const [j, a] of actions.entries()) {
      if (a.type !== 'call_agent') continue;
      const nested = await direct(env, call, agent, a, { key: `${frame.key}/${n}/${j}`, hop: frame.hop + 1, chain: frame.chain, parent: frame.parent });
      // direct() refuses a wait below hop 1, so a nested call never pauses.
      turnResults.push(result(j, a, 'pause' in nested ? { ok: false, error: { code: 'POLICY_DENIED', message: 'a nested mesh call cannot wait', retryable: false } } : nested));
    }
    if (answer.output !== undefined) return { outcome: { ok: true, value: answer.output }, turns: n, usage };
    history.push({ turn: n, actions, results: turnResults });
    results = turnResults;
  }
  return { outcome: { ok: false, error: { code: 'TURN_LIMIT', message: `${agent} took ${registry.limits.maxTurns} turns in a direct call without an output`, retryable: false } }, turns: registry.limits.maxTurns, usage };
}
