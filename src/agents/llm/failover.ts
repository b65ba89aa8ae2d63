import { setTimeout as delay } from 'node:timers/promises';
import type { EndpointBreakers } from '../../core/agent.ts';
import { AgentError, CircuitOpenError, TurnTimeoutError } from '../../core/errors.ts';
import type { Json } from '../../core/types.ts';
import { ProviderError, type ModelReply, type ModelTarget, type ModelUsage } from './types.ts';

/**
 * The model fallback chain of one turn.
 *
 * Models are tried in config order, skipping those in cooldown. On a transient
 * failure — 429 (its retry-after honoured), 5xx, 529 / `overloaded_error`, a timeout,
 * a dropped connection, an unreadable or cut-off answer — the same model is retried up
 * to its `maxRetries`, then the chain moves on to the next model and the failed one
 * cools down for `cooldownMs` (or as long as its retry-after asked, if longer). Any
 * other provider error (400, 401, 403, 404, 422 …) is the request's or the config's
 * fault: it does not fail over, and the turn fails without a retry. When every model
 * failed, the turn fails with a retryable AgentError listing each attempt, and the
 * agent's retry policy takes over. A pinned agent uses its one model only.
 *
 * Every attempt, failover and skip is returned, so the turn's answer can carry them
 * into the audit (`meta`), and a failed turn's error details list them (task.failed).
 */

export interface FailoverSettings {
  pinned: boolean;
  /** Longest wait (a retry-after, a backoff) worth spending on the same model; longer means fail over now. */
  maxWaitMs: number;
  cooldownMs: number;
  /** Wait before the n-th retry on the same model without retry-after: retryBackoffMs · 2^(n−1). */
  retryBackoffMs: number;
}

export interface AttemptRecord {
  model: string;
  ok: boolean;
  ms: number;
  reason?: string;
  status?: number;
  retryAfterMs?: number;
  message?: string;
}

export interface FailoverRecord {
  from: string;
  to: string;
  reason: string;
  status?: number;
}

export interface SkipRecord {
  model: string;
  reason: 'cooldown' | 'unconfigured' | 'breaker-open';
  /** Cooldown end, or when the open breaker lets a probe through (epoch ms). */
  until?: number;
  /** What is missing, for `unconfigured`. */
  detail?: string;
}

export interface ChainOutcome {
  reply: ModelReply;
  target: ModelTarget;
  attempts: AttemptRecord[];
  failovers: FailoverRecord[];
  skipped: SkipRecord[];
  /** Tokens spent on every call of the turn (failed ones too, where known), per model. */
  spent: Array<{ target: ModelTarget; usage: ModelUsage }>;
}

/**
 * When each model may be used again. In memory, per process: a cache of provider
 * health, not task state. Shared by every LLM agent of the process by default, since a
 * rate limit belongs to the model and the account, not to one agent.
 */
export class Cooldowns {
  private readonly until = new Map<string, number>();

  /** 0 when the model is not cooling down. */
  get(key: string, now: number): number {
    const t = this.until.get(key) ?? 0;
    if (t !== 0 && t <= now) this.until.delete(key);
    return t > now ? t : 0;
  }

  set(key: string, until: number): void {
    if (until > (this.until.get(key) ?? 0)) this.until.set(key, until);
  }

  clear(key?: string): void {
    if (key === undefined) this.until.clear();
    else this.until.delete(key);
  }
}

export const sharedCooldowns = new Cooldowns();

export interface ChainEnv {
  agent: string;
  /** Fires on the turn's timeout or a cancel (the engine's signal). */
  signal: AbortSignal;
  /** When the turn times out (epoch ms): no wait is started that would end after it. */
  deadline: number;
  now: () => number;
  cooldowns: Cooldowns;
  /** The shared breakers, one per model endpoint (ModelTarget.breaker), when configured. */
  breakers?: EndpointBreakers | undefined;
}

class CallTimeout extends Error {}

export async function runChain(
  targets: ModelTarget[],
  skipped: SkipRecord[],
  settings: FailoverSettings,
  env: ChainEnv,
  call: (target: ModelTarget, signal: AbortSignal) => Promise<ModelReply>,
): Promise<ChainOutcome> {
  const attempts: AttemptRecord[] = [];
  const failovers: FailoverRecord[] = [];
  const spent: ChainOutcome['spent'] = [];
  const order = pickOrder(targets, skipped, settings, env);

  let last: ProviderError | null = null;
  let tried = 0;
  const open: Array<{ key: string; until: number }> = [];
  for (const [pos, target] of order.entries()) {
    // An open endpoint breaker: skip the model without a call, as for a cooldown; the next model is the fallback.
    const admitted = env.breakers ? await env.breakers.admit(target.breaker) : null;
    if (admitted && !admitted.ok) {
      skipped.push({ model: target.label, reason: 'breaker-open', until: admitted.retryAt });
      open.push({ key: target.breaker, until: admitted.retryAt });
      continue;
    }
    tried++;
    for (let n = 0; ; n++) {
      const started = env.now();
      const ctl = new AbortController();
      const timer = target.requestTimeoutMs === undefined ? undefined : setTimeout(() => ctl.abort(new CallTimeout()), target.requestTimeoutMs);
      let failure: ProviderError;
      try {
        const reply = await call(target, AbortSignal.any([env.signal, ctl.signal]));
        await env.breakers?.record(target.breaker, true);
        attempts.push({ model: target.label, ok: true, ms: env.now() - started });
        if (reply.usage) spent.push({ target, usage: reply.usage });
        return { reply, target, attempts, failovers, skipped, spent };
      } catch (err) {
        if (env.signal.aborted) {
          // The turn timed out on this model: let the next attempt start elsewhere. (A cancel says nothing about the model.)
          if (env.signal.reason instanceof TurnTimeoutError) {
            env.cooldowns.set(target.key, env.now() + settings.cooldownMs);
            await env.breakers?.record(target.breaker, false, 'timeout');
          }
          throw env.signal.reason ?? err;
        }
        if (ctl.signal.aborted) failure = new ProviderError('timeout', `no answer within ${target.requestTimeoutMs} ms (requestTimeoutMs)`);
        else if (err instanceof ProviderError) failure = err;
        else throw err;
      } finally {
        clearTimeout(timer);
      }
      if (failure.usage) spent.push({ target, usage: failure.usage });
      attempts.push({
        model: target.label,
        ok: false,
        ms: env.now() - started,
        reason: failure.reason,
        ...(failure.status === undefined ? {} : { status: failure.status }),
        ...(failure.retryAfterMs === undefined ? {} : { retryAfterMs: Math.round(failure.retryAfterMs) }),
        message: failure.message.slice(0, 500),
      });
      // Only the endpoint's failures count against its breaker; a refused request (400, 401 …) is the request's fault.
      if (failure.transient) await env.breakers?.record(target.breaker, false, failure.reason);
      if (!failure.transient) {
        throw new AgentError(env.agent, `${target.label} refused the request: ${failure.message}`, {
          retryable: false,
          details: { model: target.label, ...(failure.status === undefined ? {} : { status: failure.status }), attempts: attempts as unknown as Json },
          cause: failure,
        });
      }
      last = failure;
      if (n < target.maxRetries) {
        const wait = failure.retryAfterMs ?? settings.retryBackoffMs * 2 ** n;
        if (wait <= settings.maxWaitMs && env.now() + wait < env.deadline) {
          try {
            await delay(wait, undefined, { signal: env.signal });
          } catch (err) {
            throw env.signal.reason ?? err;
          }
          continue;
        }
      }
      break;
    }
    // This model is spent for now: cool it down, and fail over to the next one.
    env.cooldowns.set(target.key, env.now() + Math.max(settings.cooldownMs, last?.retryAfterMs ?? 0));
    const next = order[pos + 1];
    if (next) failovers.push({ from: target.label, to: next.label, reason: last?.reason ?? 'unknown', ...(last?.status === undefined ? {} : { status: last.status }) });
  }

  if (tried === 0 && open.length > 0) {
    // Every usable model's breaker is open: the engine defers the task (no attempt used) or hands it to the agent's fallback.
    const first = open.reduce((a, b) => (b.until < a.until ? b : a));
    throw new CircuitOpenError(open.length === 1 ? first.key : `${first.key} (and ${open.length - 1} more)`, first.until);
  }
  const summary = order.map((t) => {
    const a = attempts.filter((x) => x.model === t.label).at(-1);
    return `${t.label}: ${a?.message ?? 'not tried'}`;
  });
  const what = settings.pinned ? `pinned model ${order[0]?.label ?? '?'} failed` : `every model failed (${order.length} tried)`;
  throw new AgentError(env.agent, `${what}: ${summary.join('; ')}`, {
    retryable: true,
    details: {
      attempts: attempts as unknown as Json,
      failovers: failovers as unknown as Json,
      skipped: skipped as unknown as Json,
      ...(last?.retryAfterMs === undefined ? {} : { retryAfterMs: Math.round(last.retryAfterMs) }),
    },
    cause: last,
  });
}

/** The models to try, in config order: a pinned agent's one model; otherwise those not cooling down. */
function pickOrder(targets: ModelTarget[], skipped: SkipRecord[], settings: FailoverSettings, env: ChainEnv): ModelTarget[] {
  if (settings.pinned) return targets.slice(0, 1);
  const now = env.now();
  const fresh: ModelTarget[] = [];
  const cooling: Array<{ target: ModelTarget; until: number }> = [];
  for (const t of targets) {
    const until = env.cooldowns.get(t.key, now);
    if (until === 0) fresh.push(t);
    else cooling.push({ target: t, until });
  }
  if (fresh.length === 0 && cooling.length > 0) {
    // Everything is cooling down: a turn is not refused for that; try the one that recovers first.
    const first = cooling.reduce((a, b) => (b.until < a.until ? b : a));
    cooling.splice(cooling.indexOf(first), 1);
    fresh.push(first.target);
  }
  for (const c of cooling) skipped.push({ model: c.target.label, reason: 'cooldown', until: c.until });
  return fresh;
}
