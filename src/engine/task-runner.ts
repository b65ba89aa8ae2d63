import type { Clock } from '../core/clock.ts';
import { digest } from '../core/digest.ts';
import { CircuitOpenError, DepthLimitError, LeaseLostError, SpineError, ToolError, TurnLimitError, UnknownAgentError, UnknownToolError, toErrorInfo } from '../core/errors.ts';
import { callAgent, Stopped } from './agent-call.ts';
import { meshGrants, runMeshCall } from './mesh.ts';
import type { MeshShim } from './mesh-shim.ts';
import { faultPoint } from '../core/faults.ts';
import { newId } from '../core/ids.ts';
import type { Logger } from '../core/log.ts';
import type { Action, ActionResult, DeliverAction, ErrorInfo, HandoffAction, Json, ToolAction, TurnInput, TurnRecord, Usage } from '../core/types.ts';
import type { NewOutboxItem } from '../store/outbox.ts';
import { effectKey, type AuditEntry, type ClaimedTask, type EffectRecord, type NewChildTask, type Settlement, type Store, type TurnOutcome } from '../store/store.ts';
import { composeReply, type ReplyComposer } from '../core/channel.ts';
import { taskCrossing, type Boundary, type CrossingContext, type Verdict } from './boundary.ts';
import type { AgentSpec, Registry, ToolSpec } from './options.ts';
import { backoffMs } from '../core/backoff.ts';
import { parseTurnResult } from './turn-result.ts';
import type { BreakerBoard } from '../validation/breakers.ts';
import { compileJoin, type JoinSpec } from '../core/join.ts';
import type { Brief } from '../core/brief.ts';
import { synthesize } from './synthesis.ts';
import { declaredRecall, memoryActor, memoryGrantsForTurn, memoryLedgerResult, runRecall, runRemember, type MemoryEnv } from './memory-actions.ts';
import { resolveScope } from '../core/memory.ts';

export interface RunnerEnv {
  store: Store;
  registry: Registry;
  boundary: Boundary;
  /** The shared circuit breakers, when configured. */
  breakers?: BreakerBoard;
  clock: Clock;
  workerId: string;
  log: Logger;
  /** How a run's output becomes its reply to the channel message that caused it (the channel layer's; core/channel.ts has the default). */
  replies?: ReplyComposer;
  /** Live-only events from agents (e.g. streamed tokens), for the gateway's event stream. */
  onAgentEvent?: (e: AgentEvent) => void;
  /** The mesh shim of this process: a turn of an external agent with mesh paths gets a capability for it (docs/mesh.md). */
  shim?: MeshShim;
  /**
   * Called just before the runner hands in its last commit: its slot is free, so the
   * worker's next claim can join that commit's transaction (one fsync for both).
   */
  release?: () => void;
}

/** A live-only event an agent emitted during a turn. */
export interface AgentEvent {
  kind: 'turn.token';
  runId: string;
  taskId: string;
  agent: string;
  turn: number;
  text: string;
  provider: string;
  model: string;
}

/** Why a runner was told to stop; in both cases it must not commit. */
export type StopReason = 'lease-lost' | 'shutdown';

type Pause = Extract<Verdict, { effect: 'defer' | 'approve' | 'escalate' }>;

/**
 * Runs one leased task through its turns until it waits (children, an approval, a
 * time window, a rate limit), finishes, fails an attempt, or loses its lease.
 * Between turns that need nothing from other tasks it keeps the lease and goes on
 * in memory: history is a cache of what each turn committed.
 */
export async function runTask(env: RunnerEnv, claimed: ClaimedTask, stop: AbortSignal): Promise<void> {
  const { store, registry, boundary, clock, log } = env;
  const { task, lease } = claimed;

  const spec = registry.agents.get(task.agent);
  if (!spec) {
    await commitFailure(env, claimed, task.attempt, new UnknownAgentError(task.agent, [...registry.agents.keys()]));
    return;
  }
  const tenant = claimed.tenant;
  const memEnv: MemoryEnv = { store, registry, workerId: env.workerId, now: () => clock.now() };

  const history: TurnRecord[] = [...claimed.history];
  let results: ActionResult[] = claimed.results;
  let open = claimed.openTurn;
  let attempt = task.attempt;
  // Set after a failed attempt or an escalation; cleared by every committed turn.
  let lastError: ErrorInfo | null = task.error;
  let turns = task.turns;
  // Children's results cross back (handoffResult) before the parent's next turn sees them; their audit rides with that turn.
  let carried: AuditEntry[] = [];
  let brief: Brief | null = null;
  if (!open && results.some((r) => r.type === 'handoff' && r.taskId)) {
    ({ results, audit: carried } = await crossJoinedResults(env, claimed, results));
    if (spec.synthesis) {
      try {
        const synthesis = await synthesize(env, claimed, spec, results, carried);
        if ('waiting' in synthesis) return;
        brief = synthesis.brief;
      } catch (err) {
        if (err instanceof LeaseLostError) return;
        throw err;
      }
    }
  }

  for (;;) {
    const n = turns + 1;
    const ctx = (key: string): CrossingContext => taskCrossing(task, tenant, env.workerId, key, claimed.origin);
    const base = { runId: task.runId, taskId: task.id, agent: task.agent, actor: env.workerId };
    const audit: AuditEntry[] = carried.splice(0);
    let actions: Action[];
    let output: Json | undefined;
    let usage: Usage | null;
    let recorded: EffectRecord[] = [];
    let decided: boolean;
    let turnSpend: Settlement | null = null;

    try {
      if (n > registry.limits.maxTurns) throw new TurnLimitError(registry.limits.maxTurns);
      if (open && open.turn === n) {
        // Decided before a crash, a deferral or an approval: replay it, never ask the agent again.
        actions = open.actions;
        output = open.output;
        usage = open.usage;
        recorded = open.effects;
        decided = true;
        open = null;
        audit.push({ ...base, kind: 'turn.resumed', data: { turn: n } });
      } else {
        // An open breaker fails fast: the task waits out the cooldown without using an attempt.
        const agentKey = `agent:${task.agent}`;
        const admitted = env.breakers ? await env.breakers.admit(agentKey) : null;
        if (admitted && !admitted.ok) {
          await commitBreakerOpen(env, claimed, spec, new CircuitOpenError(agentKey, admitted.retryAt), { ...base, turn: n }, audit, []);
          return;
        }
        const spend = await boundary.turn(ctx(`${task.runId}/${task.id}/${n}/turn`), spec);
        audit.push(...spend.audit);
        if (spend.effect !== 'allow') {
          if (spend.effect === 'deny') throw SpineError.fromInfo({ ...spend.error, retryable: false });
          await commitPause(env, claimed, spend, audit, []);
          return;
        }
        turnSpend = spend.reservation;
        const input = buildTurnInput(env, claimed, n, attempt + 1, lastError, history, results, await declaredRecall(memEnv, claimed), brief);
        const onToken = env.onAgentEvent
          ? (c: { text: string; provider: string; model: string }) =>
              env.onAgentEvent?.({ kind: 'turn.token', runId: task.runId, taskId: task.id, agent: task.agent, turn: n, ...c })
          : undefined;
        // Digested before the capability is added: the secret stays out of the trail, even hashed.
        const inputDigest = digest(input);
        // An agent outside this process calls its mesh paths mid-turn with a capability that lives only as long as the call.
        const shimmed = env.shim?.wants(spec.agent.kind, input.grants.mesh ?? []) ? env.shim.mint({ env, claimed, turn: n, stop }) : null;
        if (shimmed) input.mesh = shimmed.capability;
        let raw: unknown;
        try {
          raw = await callAgent(clock, spec, input, stop, onToken, env.breakers);
        } catch (err) {
          // Every endpoint the agent needs is open (an LLM agent's models): as for its own breaker, no attempt is used.
          if (err instanceof CircuitOpenError && !stop.aborted) {
            await commitBreakerOpen(env, claimed, spec, err, { ...base, turn: n }, audit, boundary.turnSettlement(turnSpend, null));
            return;
          }
          if (env.breakers && !stop.aborted && !(err instanceof Stopped)) await env.breakers.record(agentKey, false, toErrorInfo(err, 'AGENT_FAILED').code);
          throw err;
        } finally {
          shimmed?.revoke();
        }
        await env.breakers?.record(agentKey, true);
        const answer = parseTurnResult(spec.name, raw);
        actions = answer.actions ?? [];
        output = answer.output;
        usage = answer.usage ?? null;
        if (output !== undefined) {
          const checked = await boundary.output(ctx(`${task.runId}/${task.id}/${n}/output`), spec, output);
          audit.push(...checked.audit);
          // A refused output is a failed attempt: the agent gets the reasons back on its next attempt.
          if (checked.effect === 'deny') throw SpineError.fromInfo(checked.error);
          // A gate's fix replaces the output (the difference is in the gate's audit event).
          if (checked.effect === 'allow' && checked.value !== undefined) output = checked.value;
        }
        decided = false;
        audit.push({
          ...base,
          kind: 'turn.answered',
          digest: digest(raw),
          data: {
            turn: n,
            input: inputDigest,
            actions: actions.length,
            hasOutput: output !== undefined,
            // What the turn used, as its agent reported it (tokens, cost): the audit trail shows spend per turn.
            ...(answer.usage ? { usage: { ...answer.usage } } : {}),
            ...(answer.meta ? { meta: answer.meta } : {}),
          },
        });
      }
    } catch (err) {
      if (stop.aborted || err instanceof LeaseLostError) return;
      await commitFailure(env, claimed, attempt, err, audit, boundary.turnSettlement(turnSpend, null));
      return;
    }
    const settle = boundary.turnSettlement(turnSpend, usage);

    /** Records the decision once, before the first effect or pause, so a resume replays these actions. */
    const recordDecision = async () => {
      if (decided) return;
      decided = true;
      await store.tasks.recordDecision(
        lease,
        { n, actions, ...(output === undefined ? {} : { output }), usage, audit: [...audit.splice(0), { ...base, kind: 'turn.decided', data: { turn: n, actions: actions.map(decidedAction) } }] },
        clock.now(),
      );
      faultPoint('after-decision-before-effect');
    };

    const turnResults: ActionResult[] = [];
    const children: NewChildTask[] = [];
    let pause: Pause | null = null;
    let outbox: NewOutboxItem[] = [];
    try {
      for (const [i, action] of actions.entries()) {
        const key = effectKey(task.runId, task.id, n, i);
        if (action.type === 'tool' || action.type === 'deliver') {
          // Effects: replayed from the ledger if recorded, else through the boundary, then run.
          const done = recorded.find((e) => e.action === i && e.state !== 'started');
          if (done) {
            audit.push({ ...base, kind: 'effect.replayed', data: { key, tool: action.type === 'tool' ? action.tool : `deliver:${action.channel}` } });
            turnResults.push(ledgerResult(i, action, done));
            continue;
          }
          const tool = action.type === 'tool' ? registry.tools.get(action.tool) : undefined;
          if (action.type === 'tool' && !tool) {
            turnResults.push(refuse(i, action, new UnknownToolError(action.tool, [...registry.tools.keys()]).toInfo(), audit, base));
            continue;
          }
          const verdict =
            action.type === 'tool'
              ? await boundary.tool(ctx(key), tool!, action.input ?? null)
              : await boundary.deliver(ctx(key), action.channel, action.to, deliverPayload(action));
          audit.push(...verdict.audit);
          if (verdict.effect === 'deny') {
            turnResults.push(refuse(i, action, verdict.error, audit, base));
            continue;
          }
          if (verdict.effect !== 'allow') {
            pause = verdict;
            break;
          }
          if (tool && env.breakers) {
            const admitted = await env.breakers.admit(`tool:${tool.name}`);
            if (!admitted.ok) {
              if (verdict.reservation) await store.limits.settle({ ...verdict.reservation, micros: 0, tokens: 0 }, clock.now());
              turnResults.push(refuse(i, action, new CircuitOpenError(`tool:${tool.name}`, admitted.retryAt).toInfo(), audit, base));
              continue;
            }
          }
          await recordDecision();
          // A gate's fix replaces what crosses: the tool's input, or the message's text.
          const fixed = verdict.value === undefined ? action : fixAction(action, verdict.value);
          turnResults.push(
            fixed.type === 'tool' ? await runTool(env, claimed, n, i, fixed, tool!, verdict.reservation, stop, audit) : await runDeliver(env, claimed, n, i, fixed),
          );
        } else if (action.type === 'remember') {
          // A memory write is an effect: replayed from the ledger if recorded, else through the boundary, then stored once under its key.
          const done = recorded.find((e) => e.action === i && e.state !== 'started');
          if (done) {
            audit.push({ ...base, kind: 'effect.replayed', data: { key, tool: 'remember' } });
            turnResults.push(memoryLedgerResult(i, action, done));
            continue;
          }
          const scope = resolveScope(action.scope, memoryActor(claimed));
          const verdict = await boundary.remember(ctx(key), { scope, key: action.key, value: action.value, text: action.text ?? null });
          audit.push(...verdict.audit);
          if (verdict.effect === 'deny') {
            turnResults.push(refuse(i, action, verdict.error, audit, base));
            continue;
          }
          if (verdict.effect !== 'allow') {
            pause = verdict;
            break;
          }
          await recordDecision();
          // A gate's fix replaces what is written (its value and text).
          const fixedWrite = verdict.value !== undefined && isObject(verdict.value) && 'value' in verdict.value ? { ...action, value: verdict.value.value ?? null, ...(typeof verdict.value.text === 'string' ? { text: verdict.value.text } : {}) } : action;
          turnResults.push(await runRemember(memEnv, claimed, n, i, fixedWrite, scope));
        } else if (action.type === 'recall') {
          turnResults.push(await runRecall(memEnv, claimed, i, action, audit));
        } else if (action.type === 'call_agent') {
          // A direct call (docs/mesh.md): answered here; mesh.call committed before it is forwarded, mesh.reply with this turn. A retried turn calls again.
          const called = await runMeshCall(env, { claimed, index: i, action, key, settle, audit, stop });
          if ('pause' in called) {
            pause = called.pause;
            break;
          }
          turnResults.push(called);
        } else {
          const planned = await planHandoff(env, ctx(key), claimed, i, action, audit);
          if ('pause' in planned) {
            pause = planned.pause;
            break;
          }
          turnResults.push(planned.result);
          if (planned.child) children.push(planned.child);
        }
      }
      // A run's reply to its channel is an outbound message like any other: it crosses the boundary, then is queued with the final commit.
      if (!pause && output !== undefined && claimed.reply) {
        const reply = await crossReply(env, claimed, n, output, audit);
        if ('pause' in reply) pause = reply.pause;
        else outbox = reply.outbox;
      }
      if (pause) {
        await recordDecision();
        await commitPause(env, claimed, pause, audit, settle);
        return;
      }
    } catch (err) {
      if (stop.aborted || err instanceof Stopped || err instanceof LeaseLostError) return;
      throw err;
    }
    faultPoint('after-effect-before-commit');

    let outcome: TurnOutcome;
    if (output !== undefined) outcome = { kind: 'succeed', output };
    else if (children.length > 0) outcome = { kind: 'wait', children, join: batchJoin(actions, spec) };
    else outcome = { kind: 'continue' };

    audit.push({ ...base, kind: 'turn.committed', digest: digest(turnResults), data: { turn: n, outcome: outcome.kind } });
    if (outcome.kind !== 'continue') env.release?.();
    try {
      await store.commitTurn({
        lease,
        now: clock.now(),
        settle,
        turn: { n, actions, results: turnResults, ...(output === undefined ? {} : { output }), usage },
        outcome,
        audit,
        ...(outbox.length ? { outbox } : {}),
      });
    } catch (err) {
      if (err instanceof LeaseLostError) {
        log.warn('lease lost before commit; another worker will redo the turn', { task: task.id, turn: n });
        return;
      }
      throw err;
    }
    faultPoint('after-commit');
    if (outcome.kind !== 'continue' || stop.aborted) return;

    history.push({ turn: n, actions, results: turnResults });
    results = turnResults;
    brief = null;
    turns = n;
    attempt = 0;
    lastError = null;
  }
}

/** Passes each child's outcome through the boundary's handoffResult crossing; a refused one reaches the parent as an error. */
async function crossJoinedResults(env: RunnerEnv, claimed: ClaimedTask, results: ActionResult[]): Promise<{ results: ActionResult[]; audit: AuditEntry[] }> {
  const { task, tenant } = claimed;
  const audit: AuditEntry[] = [];
  const out: ActionResult[] = [];
  for (const r of results) {
    if (r.type !== 'handoff' || !r.taskId || !r.ok) {
      out.push(r);
      continue;
    }
    const verdict = await env.boundary.handoffResult(taskCrossing(task, tenant, env.workerId, `${task.runId}/${r.taskId}/result`, claimed.origin), r.taskId, r.value);
    audit.push(...verdict.audit);
    if (verdict.effect === 'deny') out.push({ index: r.index, type: r.type, ...(r.id === undefined ? {} : { id: r.id }), taskId: r.taskId, ok: false, error: verdict.error });
    else out.push(verdict.effect === 'allow' && verdict.value !== undefined ? { ...r, value: verdict.value } : r);
  }
  return { results: out, audit };
}

function buildTurnInput(
  env: RunnerEnv,
  claimed: ClaimedTask,
  n: number,
  attempt: number,
  lastError: ErrorInfo | null,
  history: TurnRecord[],
  results: ActionResult[],
  memory: Json[],
  brief: Brief | null = null,
): TurnInput {
  const { task } = claimed;
  const { boundary } = env;
  // A copy: an in-process agent that keeps or changes its input must not reach the runner's in-memory history.
  return structuredClone({
    protocol: 'spine.turn/1',
    task: { id: task.id, runId: task.runId, agent: task.agent, parentId: task.parentId, depth: task.depth, input: task.input, turn: n, attempt, lastError },
    session: claimed.session,
    history,
    results,
    memory,
    grants: withMemoryGrants(boundary.grantsFor(task.agent), memoryGrantsForTurn(env.registry, claimed), meshGrants(env, task.agent)),
    ...(brief ? { brief: brief as unknown as Json } : {}),
  } satisfies TurnInput);
}

function actionName(action: Action): string {
  switch (action.type) {
    case 'tool':
      return `tool:${action.tool}`;
    case 'handoff':
      return `handoff:${action.agent}`;
    case 'deliver':
      return `deliver:${action.channel}:${action.to}`;
    case 'remember':
      return `remember:${action.scope}`;
    case 'recall':
      return 'recall';
    case 'call_agent':
      return `call_agent:${action.agent}`;
  }
}

function withMemoryGrants(g: { tools: string[]; agents: string[] }, memory: { read: string[]; write: string[] } | undefined, mesh: string[]): TurnInput['grants'] {
  return { ...g, ...(memory ? { memory } : {}), ...(mesh.length ? { mesh } : {}) };
}

function refuse(index: number, action: Action, error: ErrorInfo, audit: AuditEntry[], base: Omit<AuditEntry, 'kind'>): ActionResult {
  audit.push({ ...base, kind: 'action.refused', data: { index, action: actionName(action), code: error.code } });
  return { index, type: action.type, ...(action.id === undefined ? {} : { id: action.id }), ok: false, error };
}

function ledgerResult(index: number, action: ToolAction | DeliverAction, rec: EffectRecord): ActionResult {
  const head = { index, type: action.type, ...(action.id === undefined ? {} : { id: action.id }) };
  return rec.state === 'completed' ? { ...head, ok: true, value: rec.result } : { ...head, ok: false, error: rec.error! };
}

/** Executes one tool under its idempotency key; the ledger's record is the result. */
async function runTool(
  env: RunnerEnv,
  claimed: ClaimedTask,
  n: number,
  index: number,
  action: ToolAction,
  tool: ToolSpec,
  reservation: Settlement | null,
  stop: AbortSignal,
  audit: AuditEntry[],
): Promise<ActionResult> {
  const { store, clock } = env;
  const { task } = claimed;
  const key = effectKey(task.runId, task.id, n, index);
  const base = { runId: task.runId, taskId: task.id, agent: task.agent, actor: env.workerId };
  const input = action.input ?? null;
  const rec = await store.tasks.beginEffect({ key, runId: task.runId, taskId: task.id, turn: n, action: index, tool: action.tool, inputDigest: digest(input) }, clock.now());
  if (rec.state !== 'started') {
    // Another holder of this lease recorded it meanwhile: the ledger's outcome stands; nothing was spent here.
    if (reservation) await store.limits.settle({ ...reservation, micros: 0, tokens: 0 }, clock.now());
    audit.push({ ...base, kind: 'effect.replayed', data: { key, tool: action.tool } });
    return ledgerResult(index, action, rec);
  }
  const maybeRepeated = rec.attempts > 1;
  if (stop.aborted) throw new Stopped();
  let outcome: { result: Json } | { error: ErrorInfo };
  try {
    const value = await tool.run(input, { idempotencyKey: key, maybeRepeated, runId: task.runId, taskId: task.id, agent: task.agent, signal: stop });
    outcome = { result: toJsonValue(value) };
  } catch (err) {
    outcome = { error: err instanceof SpineError ? err.toInfo() : new ToolError(action.tool, err instanceof Error ? err.message : String(err)).toInfo() };
  }
  faultPoint('after-effect-before-record');
  await env.breakers?.record(`tool:${action.tool}`, 'result' in outcome, 'error' in outcome ? outcome.error.code : null);
  const final = await store.tasks.completeEffect(
    key,
    outcome,
    clock.now(),
    [{ ...base, kind: 'result' in outcome ? 'effect.completed' : 'effect.failed', digest: digest(outcome), data: { key, tool: action.tool, maybeRepeated } }],
    reservation ?? undefined,
  );
  const result = ledgerResult(index, action, final);
  if (!result.ok) return result;
  // The result crosses back: its contract and gates decide whether the agent sees it.
  const checked = await env.boundary.toolResult(taskCrossing(task, claimed.tenant, env.workerId, key, claimed.origin), tool, result.value);
  audit.push(...checked.audit);
  if (checked.effect === 'deny') return { index, type: 'tool', ...(action.id === undefined ? {} : { id: action.id }), ok: false, error: checked.error };
  if (checked.effect === 'allow' && checked.value !== undefined) return { ...result, value: checked.value };
  return result;
}

/** An action with a gate's replacement: a tool's input, or a message's text (from the fixed payload's `text`). */
function fixAction(action: ToolAction | DeliverAction, value: Json): ToolAction | DeliverAction {
  if (action.type === 'tool') return { ...action, input: value };
  const text = isObject(value) && typeof value.text === 'string' ? value.text : typeof value === 'string' ? value : action.text;
  return { ...action, text };
}

/** What a deliver action's policy sees (allowlists match on `to`). */
function deliverPayload(action: DeliverAction): Json {
  return { channel: action.channel, account: action.account ?? 'default', to: action.to, ...(action.thread ? { thread: action.thread } : {}), text: action.text };
}

/**
 * An outbound message's durable effect is its outbox row, keyed by the action's
 * place in the run: even a re-execution after a crash cannot queue it twice. The
 * dispatcher sends it (with retries) after the row is committed.
 */
async function runDeliver(env: RunnerEnv, claimed: ClaimedTask, n: number, index: number, action: DeliverAction): Promise<ActionResult> {
  const { store, clock } = env;
  const { task } = claimed;
  const key = effectKey(task.runId, task.id, n, index);
  const base = { runId: task.runId, taskId: task.id, agent: task.agent, actor: env.workerId };
  const target = { to: action.to, ...(action.thread ? { thread: action.thread } : {}) };
  const payload = { text: action.text };
  const rec = await store.tasks.beginEffect({ key, runId: task.runId, taskId: task.id, turn: n, action: index, tool: `deliver:${action.channel}`, inputDigest: digest({ target, payload }) }, clock.now());
  if (rec.state !== 'started') return ledgerResult(index, action, rec);
  const item = await store.outbox.enqueue(
    { idempotencyKey: key, runId: task.runId, taskId: task.id, channel: action.channel, account: action.account ?? 'default', target, payload },
    clock.now(),
  );
  const final = await store.tasks.completeEffect(key, { result: { outbox: item.id, state: item.state } }, clock.now(), [
    { ...base, kind: 'effect.completed', digest: digest(item.id), data: { key, tool: `deliver:${action.channel}`, outbox: item.id } },
  ]);
  return ledgerResult(index, action, final);
}

/**
 * The reply to the channel message that caused the run, composed by the channel layer
 * and crossing `deliver` like an agent's own outbound message: allowlists, approvals,
 * windows and rate limits apply, and a refusal is audited (the run still succeeds). Its
 * outbox row is keyed `reply:<run>`, so a resumed turn cannot queue it twice.
 */
async function crossReply(env: RunnerEnv, claimed: ClaimedTask, n: number, output: Json, audit: AuditEntry[]): Promise<{ outbox: NewOutboxItem[] } | { pause: Pause }> {
  const { task } = claimed;
  const reply = claimed.reply!;
  const composed = (env.replies ?? composeReply)(reply, output);
  if (!composed) return { outbox: [] };
  const key = `${task.runId}/${task.id}/${n}/reply`;
  const payload: Json = { channel: reply.channel, account: reply.account, to: composed.to, reply: true, ...(isObject(composed.payload) ? composed.payload : { payload: composed.payload }) };
  const verdict = await env.boundary.deliver(taskCrossing(task, claimed.tenant, env.workerId, key, claimed.origin), reply.channel, composed.to, payload);
  audit.push(...verdict.audit);
  if (verdict.effect === 'deny') {
    audit.push({ runId: task.runId, taskId: task.id, agent: task.agent, actor: env.workerId, kind: 'reply.refused', data: { key, channel: reply.channel, to: composed.to, code: verdict.error.code } });
    return { outbox: [] };
  }
  if (verdict.effect !== 'allow') return { pause: verdict };
  return {
    outbox: [{ idempotencyKey: `reply:${task.runId}`, runId: task.runId, taskId: task.id, channel: reply.channel, account: reply.account, target: composed.target, payload: composed.payload }],
  };
}

function isObject(v: Json): v is { [key: string]: Json } {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

type Planned = { result: ActionResult; child: NewChildTask | null } | { pause: Pause };

/** Validates a handoff at the boundary and plans its child task; a refused handoff is the action's result. */
async function planHandoff(env: RunnerEnv, ctx: CrossingContext, claimed: ClaimedTask, index: number, action: HandoffAction, audit: AuditEntry[]): Promise<Planned> {
  const { registry, boundary } = env;
  const { task } = claimed;
  const base = { runId: task.runId, taskId: task.id, agent: task.agent, actor: env.workerId };
  const target = registry.agents.get(action.agent);
  if (!target) return { result: refuse(index, action, new UnknownAgentError(action.agent, [...registry.agents.keys()]).toInfo(), audit, base), child: null };
  if (task.depth + 1 > registry.limits.maxDepth) return { result: refuse(index, action, new DepthLimitError(registry.limits.maxDepth).toInfo(), audit, base), child: null };
  let input = action.input ?? null;
  const verdict = await boundary.handoff(ctx, target, input, action.contract);
  audit.push(...verdict.audit);
  if (verdict.effect === 'deny') return { result: refuse(index, action, verdict.error, audit, base), child: null };
  if (verdict.effect !== 'allow') return { pause: verdict };
  // A gate's fix replaces the payload the child receives.
  if (verdict.value !== undefined) input = verdict.value;
  const id = newId('task');
  audit.push({ ...base, kind: 'action.handoff', digest: digest(input), data: { index, agent: target.name, child: id } });
  return {
    // Filled with the child's outcome when the parent's next turn is assembled.
    result: {
      index,
      type: 'handoff',
      ...(action.id === undefined ? {} : { id: action.id }),
      taskId: id,
      ok: false,
      error: { code: 'CHILD_NOT_FINISHED', message: 'child task has not finished', retryable: false },
    },
    child: { id, agent: target.name, input, parentAction: index, maxAttempts: target.retry.maxAttempts },
  };
}

/** A crossing must wait (window, rate limit, approval) or a ceiling stopped it: the decided turn stays open. */
async function commitPause(env: RunnerEnv, claimed: ClaimedTask, pause: Pause, audit: AuditEntry[], settle: Settlement[]): Promise<void> {
  const outcome: TurnOutcome =
    pause.effect === 'defer'
      ? { kind: 'defer', until: pause.until, ruleId: pause.ruleId, reason: pause.reason }
      : pause.effect === 'approve'
        ? { kind: 'await-approval', approval: pause.approval }
        : { kind: 'escalate', error: pause.error, approval: pause.approval };
  env.release?.();
  try {
    await env.store.commitTurn({ lease: claimed.lease, now: env.clock.now(), settle, outcome, audit });
  } catch (e) {
    if (!(e instanceof LeaseLostError)) throw e;
  }
}

/**
 * Work refused by an open breaker (the agent's, or every model endpoint it has): the
 * fallback agent takes it over, or it waits out the cooldown. Neither uses an attempt.
 */
async function commitBreakerOpen(
  env: RunnerEnv,
  claimed: ClaimedTask,
  spec: AgentSpec,
  open: CircuitOpenError,
  at: { runId: string; taskId: string; agent: string; actor: string; turn: number },
  audit: AuditEntry[],
  settle: Settlement[],
): Promise<void> {
  const { turn, ...base } = at;
  const details = open.details as { breaker: string; retryAt: number };
  audit.push({ ...base, kind: 'breaker.rejected', data: { breaker: details.breaker, code: open.code, retryAt: details.retryAt, turn } });
  const fallback = spec.fallback ? env.registry.agents.get(spec.fallback) : undefined;
  if (fallback) await commitHandOver(env, claimed, fallback, open.toInfo(), 'breaker-open', audit, settle);
  else await commitPause(env, claimed, { effect: 'defer', until: details.retryAt, ruleId: `breaker:${details.breaker}`, reason: open.message, audit }, audit, settle);
}

/** The agent's fallback takes the task over (audited as task.handed-over with the commit). */
async function commitHandOver(env: RunnerEnv, claimed: ClaimedTask, fallback: AgentSpec, error: ErrorInfo, why: 'attempts-spent' | 'breaker-open', audit: AuditEntry[], settle: Settlement[] = []): Promise<void> {
  env.release?.();
  try {
    await env.store.commitTurn({
      lease: claimed.lease,
      now: env.clock.now(),
      settle,
      outcome: { kind: 'hand-over', agent: fallback.name, maxAttempts: fallback.retry.maxAttempts, error, why },
      audit,
    });
  } catch (e) {
    if (!(e instanceof LeaseLostError)) throw e;
  }
}

/** Records a failed attempt: retry with backoff if retryable and attempts remain; else dead-letter or escalate. */
async function commitFailure(env: RunnerEnv, claimed: ClaimedTask, attempt: number, err: unknown, audit: AuditEntry[] = [], settle: Settlement[] = []): Promise<void> {
  const { store, registry, clock, log } = env;
  const { task, lease } = claimed;
  const info = toErrorInfo(err, 'AGENT_FAILED');
  const spec = registry.agents.get(task.agent);
  const policy = spec?.retry ?? registry.retry;
  const failed = attempt + 1;
  const now = clock.now();
  let outcome: TurnOutcome;
  const fallback = spec?.fallback ? registry.agents.get(spec.fallback) : undefined;
  if (info.retryable && failed < policy.maxAttempts) outcome = { kind: 'retry', error: info, runAt: now + backoffMs(policy, failed) };
  else if (fallback) outcome = { kind: 'hand-over', agent: fallback.name, maxAttempts: fallback.retry.maxAttempts, error: info, why: 'attempts-spent' };
  else if (spec?.onExhausted === 'escalate') {
    outcome = {
      kind: 'escalate',
      error: info,
      approval: {
        runId: task.runId,
        taskId: task.id,
        agent: task.agent,
        actionKey: `${task.runId}/${task.id}/${task.turns + 1}/attempts`,
        action: { kind: 'turn', name: task.agent, input: null },
        kind: 'escalation',
        ruleId: null,
        reason: `${task.agent} failed ${failed} time(s) (${info.code}: ${info.message}); approve to retry with fresh attempts, deny to dead-letter it`,
        approvers: 'operators',
        expiresAt: null,
        onExpiry: null,
      },
    };
  } else outcome = { kind: 'dead', error: info };
  log.warn(`task attempt failed → ${outcome.kind}`, { task: task.id, agent: task.agent, code: info.code, message: info.message });
  env.release?.();
  try {
    await store.commitTurn({ lease, now, settle, outcome, audit });
  } catch (e) {
    if (!(e instanceof LeaseLostError)) throw e;
  }
}

/** The join of a turn's batch of handoffs: the first handoff that names one, else the agent's. */
function batchJoin(actions: Action[], spec: AgentSpec): JoinSpec | null {
  for (const a of actions) {
    if (a.type !== 'handoff' || !a.join) continue;
    const compiled = compileJoin(a.join);
    if (typeof compiled !== 'string') return compiled;
  }
  return spec.join;
}

function toJsonValue(value: unknown): Json {
  if (value === undefined) return null;
  return JSON.parse(JSON.stringify(value)) as Json;
}

/** What `spine why` shows of a decided action: its index, type and target (payloads stay out of the trail). */
function decidedAction(a: Action, index: number): Json {
  const target = a.type === 'tool' ? a.tool : a.type === 'handoff' || a.type === 'call_agent' ? a.agent : a.type === 'deliver' ? a.channel : a.type === 'remember' ? `${a.scope}:${a.key}` : 'recall';
  return { index, type: a.type, target, ...(a.id ? { id: a.id } : {}) };
}
