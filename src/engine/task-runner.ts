import type { Clock } from '../core/clock.ts';
import { digest } from '../core/digest.ts';
import {
  DepthLimitError,
  LeaseLostError,
  SpineError,
  ToolError,
  TurnLimitError,
  TurnTimeoutError,
  UnknownAgentError,
  UnknownToolError,
  toErrorInfo,
} from '../core/errors.ts';
import { faultPoint } from '../core/faults.ts';
import { newId } from '../core/ids.ts';
import type { Logger } from '../core/log.ts';
import type { Action, ActionResult, ErrorInfo, HandoffAction, Json, ToolAction, TurnInput, TurnRecord, Usage } from '../core/types.ts';
import { effectKey, type AuditEntry, type ClaimedTask, type EffectRecord, type Lease, type NewChildTask, type Store, type TurnOutcome } from '../store/store.ts';
import type { AgentSpec, Registry } from './options.ts';
import { backoffMs } from './retry.ts';
import { parseTurnResult } from './turn-result.ts';

export interface RunnerEnv {
  store: Store;
  registry: Registry;
  clock: Clock;
  workerId: string;
  log: Logger;
}

/** Why a runner was told to stop; in both cases it must not commit. */
export type StopReason = 'lease-lost' | 'shutdown';

class Stopped extends Error {}

/**
 * Runs one leased task through its turns until it waits for children, finishes,
 * fails an attempt, or loses its lease. Between turns that need nothing from other
 * tasks it keeps the lease and goes on in memory: history is a cache of what each
 * turn committed.
 */
export async function runTask(env: RunnerEnv, claimed: ClaimedTask, stop: AbortSignal): Promise<void> {
  const { store, registry, clock, log } = env;
  const { task, lease } = claimed;
  store.markRunning(lease, clock.now()).catch((err: unknown) => log.warn('markRunning failed', { task: task.id, error: String(err) }));

  const spec = registry.agents.get(task.agent);
  if (!spec) {
    await commitFailure(env, claimed, task.attempt, new UnknownAgentError(task.agent, [...registry.agents.keys()]));
    return;
  }

  const history: TurnRecord[] = [...claimed.history];
  let results: ActionResult[] = claimed.results;
  let open = claimed.openTurn;
  let attempt = task.attempt;
  let turns = task.turns;

  for (;;) {
    const n = turns + 1;
    let actions: Action[];
    let output: Json | undefined;
    let usage: Usage | null;
    let recorded: EffectRecord[] = [];
    const audit: AuditEntry[] = [];
    const base = { runId: task.runId, taskId: task.id, agent: task.agent, actor: env.workerId };

    try {
      if (n > registry.limits.maxTurns) throw new TurnLimitError(registry.limits.maxTurns);
      if (open && open.turn === n) {
        // The turn was decided before a crash: replay its recorded actions, never ask the agent again.
        actions = open.actions;
        output = open.output;
        usage = open.usage;
        recorded = open.effects;
        open = null;
        audit.push({ ...base, kind: 'turn.resumed', data: { turn: n } });
      } else {
        const input = buildTurnInput(registry, claimed, n, attempt + 1, history, results);
        const raw = await callAgent(spec, input, stop);
        const answer = parseTurnResult(spec.name, raw);
        actions = answer.actions ?? [];
        output = answer.output;
        usage = answer.usage ?? null;
        audit.push({ ...base, kind: 'turn.answered', digest: digest(raw), data: { turn: n, actions: actions.length, hasOutput: output !== undefined } });
        const tools = actions.flatMap((a, i) => (a.type === 'tool' && registry.tools.has(a.tool) ? [{ a, i }] : []));
        if (tools.length > 0) {
          // Record the decision and start its effects durably before running any of them.
          const starts = tools.map(({ a, i }) => ({ key: effectKey(task.runId, task.id, n, i), action: i, tool: a.tool, inputDigest: digest(a.input ?? null) }));
          await store.recordDecision(
            lease,
            {
              n,
              actions,
              ...(output === undefined ? {} : { output }),
              usage,
              effects: starts,
              audit: [...audit.splice(0), { ...base, kind: 'turn.decided', data: { turn: n, effects: starts.length } }],
            },
            clock.now(),
          );
          faultPoint('after-decision-before-effect');
        }
      }
    } catch (err) {
      if (stop.aborted) return;
      if (err instanceof LeaseLostError) return;
      await commitFailure(env, claimed, attempt, err, audit);
      return;
    }

    const turnResults: ActionResult[] = [];
    const children: NewChildTask[] = [];
    try {
      for (const [i, action] of actions.entries()) {
        if (action.type === 'tool') {
          turnResults.push(await runTool(env, claimed, n, i, action, recorded.find((e) => e.action === i), stop, audit));
        } else {
          turnResults.push(planHandoff(registry, claimed, i, action, children, audit));
        }
      }
    } catch (err) {
      if (stop.aborted || err instanceof Stopped || err instanceof LeaseLostError) return;
      throw err;
    }
    faultPoint('after-effect-before-commit');

    let outcome: TurnOutcome;
    if (output !== undefined) outcome = { kind: 'succeed', output };
    else if (children.length > 0) outcome = { kind: 'wait', children };
    else outcome = { kind: 'continue' };

    audit.push({ ...base, kind: 'turn.committed', digest: digest(turnResults), data: { turn: n, outcome: outcome.kind } });
    try {
      await store.commitTurn({
        lease,
        now: clock.now(),
        turn: { n, actions, results: turnResults, ...(output === undefined ? {} : { output }), usage },
        outcome,
        audit,
      });
    } catch (err) {
      if (err instanceof LeaseLostError) {
        log.warn('lease lost before commit; another worker will redo the turn', { task: task.id, turn: n });
        return;
      }
      throw err;
    }
    faultPoint('after-commit');
    if (outcome.kind !== 'continue') return;
    if (stop.aborted) return;

    history.push({ turn: n, actions, results: turnResults });
    results = turnResults;
    turns = n;
    attempt = 0;
  }
}

function buildTurnInput(registry: Registry, claimed: ClaimedTask, n: number, attempt: number, history: TurnRecord[], results: ActionResult[]): TurnInput {
  const { task } = claimed;
  // A copy: an in-process agent that keeps or changes its input must not reach the runner's in-memory history.
  return structuredClone({
    protocol: 'spine.turn/1',
    task: { id: task.id, runId: task.runId, agent: task.agent, parentId: task.parentId, depth: task.depth, input: task.input, turn: n, attempt },
    session: null,
    history,
    results,
    memory: [],
    grants: { tools: [...registry.tools.keys()], agents: [...registry.agents.keys()] },
  } satisfies TurnInput);
}

/** Calls the agent with its timeout; a stop (cancel, shutdown) aborts the call too. */
async function callAgent(spec: AgentSpec, input: TurnInput, stop: AbortSignal): Promise<unknown> {
  if (stop.aborted) throw new Stopped();
  const ctl = new AbortController();
  const onStop = () => ctl.abort(new Stopped());
  stop.addEventListener('abort', onStop, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new TurnTimeoutError(spec.name, spec.timeoutMs);
      ctl.abort(err);
      reject(err);
    }, spec.timeoutMs);
  });
  const stopped = new Promise<never>((_, reject) => ctl.signal.addEventListener('abort', () => reject(ctl.signal.reason as Error), { once: true }));
  try {
    return await Promise.race([spec.agent.turn(input, { signal: ctl.signal, timeoutMs: spec.timeoutMs }), timeout, stopped]);
  } finally {
    clearTimeout(timer);
    stop.removeEventListener('abort', onStop);
  }
}

/** Executes (or replays from the ledger) one tool action; its failure is the action's result, not the turn's. */
async function runTool(
  env: RunnerEnv,
  claimed: ClaimedTask,
  n: number,
  index: number,
  action: ToolAction,
  recorded: EffectRecord | undefined,
  stop: AbortSignal,
  audit: AuditEntry[],
): Promise<ActionResult> {
  const { store, registry, clock } = env;
  const { task } = claimed;
  const key = effectKey(task.runId, task.id, n, index);
  const head = { index, type: 'tool' as const, ...(action.id === undefined ? {} : { id: action.id }) };
  const base = { runId: task.runId, taskId: task.id, agent: task.agent, actor: env.workerId };
  const tool = registry.tools.get(action.tool);
  if (!tool) {
    const error = new UnknownToolError(action.tool, [...registry.tools.keys()]).toInfo();
    audit.push({ ...base, kind: 'action.refused', data: { index, tool: action.tool, code: error.code } });
    return { ...head, ok: false, error };
  }
  if (recorded && recorded.state !== 'started') {
    audit.push({ ...base, kind: 'effect.replayed', data: { key, tool: action.tool } });
    return recorded.state === 'completed' ? { ...head, ok: true, value: recorded.result } : { ...head, ok: false, error: recorded.error! };
  }
  let maybeRepeated = false;
  if (recorded) {
    // Started before a crash but never recorded: it may have happened. Run it again under the same key.
    await store.restartEffect(key, clock.now());
    maybeRepeated = true;
  }
  if (stop.aborted) throw new Stopped();
  let outcome: { result: Json } | { error: ErrorInfo };
  try {
    const value = await tool.run(action.input ?? null, { idempotencyKey: key, maybeRepeated, runId: task.runId, taskId: task.id, agent: task.agent, signal: stop });
    outcome = { result: toJsonValue(value) };
  } catch (err) {
    outcome = { error: err instanceof SpineError ? err.toInfo() : new ToolError(action.tool, err instanceof Error ? err.message : String(err)).toInfo() };
  }
  faultPoint('after-effect-before-record');
  const result: ActionResult = 'result' in outcome ? { ...head, ok: true, value: outcome.result } : { ...head, ok: false, error: outcome.error };
  await store.completeEffect(key, outcome, clock.now(), [
    { ...base, kind: result.ok ? 'effect.completed' : 'effect.failed', digest: digest(outcome), data: { key, tool: action.tool, maybeRepeated } },
  ]);
  return result;
}

/** Validates a handoff and plans its child task; a refused handoff is the action's result. */
function planHandoff(registry: Registry, claimed: ClaimedTask, index: number, action: HandoffAction, children: NewChildTask[], audit: AuditEntry[]): ActionResult {
  const { task } = claimed;
  const head = { index, type: 'handoff' as const, ...(action.id === undefined ? {} : { id: action.id }) };
  const base = { runId: task.runId, taskId: task.id, agent: task.agent };
  const target = registry.agents.get(action.agent);
  let refusal: SpineError | null = null;
  if (!target) refusal = new UnknownAgentError(action.agent, [...registry.agents.keys()]);
  else if (task.depth + 1 > registry.limits.maxDepth) refusal = new DepthLimitError(registry.limits.maxDepth);
  if (refusal || !target) {
    const error = refusal!.toInfo();
    audit.push({ ...base, kind: 'action.refused', data: { index, agent: action.agent, code: error.code } });
    return { ...head, ok: false, error };
  }
  const id = newId('task');
  children.push({ id, agent: target.name, input: action.input ?? null, parentAction: index, maxAttempts: target.retry.maxAttempts });
  audit.push({ ...base, kind: 'action.handoff', digest: digest(action.input ?? null), data: { index, agent: target.name, child: id } });
  // Filled with the child's outcome when the parent's next turn is assembled.
  return { ...head, taskId: id, ok: false, error: { code: 'CHILD_NOT_FINISHED', message: 'child task has not finished', retryable: false } };
}

/** Records a failed attempt: retry with backoff if retryable and attempts remain, else dead-letter. */
async function commitFailure(env: RunnerEnv, claimed: ClaimedTask, attempt: number, err: unknown, audit: AuditEntry[] = []): Promise<void> {
  const { store, registry, clock, log } = env;
  const { task, lease } = claimed;
  const info = toErrorInfo(err, 'AGENT_FAILED');
  const policy = registry.agents.get(task.agent)?.retry ?? registry.retry;
  const failed = attempt + 1;
  const now = clock.now();
  const outcome: TurnOutcome =
    info.retryable && failed < policy.maxAttempts ? { kind: 'retry', error: info, runAt: now + backoffMs(policy, failed) } : { kind: 'dead', error: info };
  log.warn(`task attempt failed → ${outcome.kind}`, { task: task.id, agent: task.agent, code: info.code, message: info.message });
  try {
    await store.commitTurn({ lease, now, outcome, audit });
  } catch (e) {
    if (!(e instanceof LeaseLostError)) throw e;
  }
}

function toJsonValue(value: unknown): Json {
  if (value === undefined) return null;
  return JSON.parse(JSON.stringify(value)) as Json;
}

export type { Lease };
