import type { Clock } from '../core/clock.ts';
import { SpineError, UnknownAgentError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import type { ErrorInfo, Json } from '../core/types.ts';
import { Boundary } from '../engine/boundary.ts';
import type { Registry } from '../engine/options.ts';
import { describeEnvelope, route, type Binding, type RouteDecision } from '../routing/bindings.ts';
import { resetThreshold, scopeFor, sessionKey, type SessionScope, type SessionSettings } from '../routing/sessions.ts';
import type { AcceptResult, AcceptRoute, EnvelopeRecord, Store } from '../store/store.ts';
import type { Envelope } from '../core/envelope.ts';
import { envelopeInput } from './envelope.ts';

/** The routing half of a compiled config: bindings and session settings. */
export interface RoutingConfig {
  bindings: readonly Binding[];
  sessions: SessionSettings;
}

/** An envelope no binding matches (and no default binding exists). */
export const UNROUTABLE = 'UNROUTABLE';

/**
 * Intake: the one door for inbound work. Normalised envelopes are routed by the
 * bindings (deterministically: same envelope and config, same decision), put in
 * their session's lane and committed together with their run before anything is
 * acknowledged. Config can be swapped while running (reload).
 */
export class Intake {
  private readonly store: Store;
  private readonly clock: Clock;
  private current: { registry: Registry; routing: RoutingConfig; boundary: Boundary };

  constructor(store: Store, registry: Registry, routing: RoutingConfig, clock: Clock) {
    this.store = store;
    this.clock = clock;
    this.current = { registry, routing, boundary: new Boundary(store, registry, clock) };
  }

  /** Swaps in a reloaded config; envelopes already accepted keep their decisions. */
  /** The registry in force (a reload replaces it). */
  get registry(): Registry {
    return this.current.registry;
  }

  reconfigure(registry: Registry, routing: RoutingConfig): void {
    this.current = { registry, routing, boundary: new Boundary(this.store, registry, this.clock) };
  }

  /** The routing decision for an envelope, without storing anything (`spine route explain`). */
  explain(e: Envelope): RouteDecision {
    return route(this.current.routing.bindings, e);
  }

  /**
   * Stores the envelope and its run atomically. `agent` skips the bindings and sends
   * the envelope straight to that agent (operator API calls, `spine send`).
   */
  async accept(e: Envelope, opts: { actor: string; agent?: string; tenant?: string; session?: SessionTarget; origin?: string }): Promise<AcceptResult> {
    const envelopeId = newId('env');
    const decided = this.decide(e, envelopeId, opts);
    // The origin comes from the door (the scheduler), never from the envelope: a webhook cannot claim it.
    const acceptRoute: AcceptRoute = decided.ok && opts.origin ? { ...decided, origin: opts.origin } : decided;
    if (acceptRoute.ok) {
      // Intake is a crossing: input the agent's contract (or a gate) refuses is bad input, and nothing is stored.
      const spec = this.current.registry.agents.get(acceptRoute.agent)!;
      const key = `envelope:${envelopeId}`;
      const verdict = await this.current.boundary.intake(
        { agent: spec.name, runId: null, taskId: null, tenant: acceptRoute.tenant ?? 'default', actor: opts.actor, key, origin: acceptRoute.origin ?? null },
        spec,
        acceptRoute.input,
      );
      if (verdict.effect === 'deny') throw SpineError.fromInfo({ ...verdict.error, retryable: false });
    }
    return this.store.acceptEnvelope({ envelope: e, envelopeId, route: acceptRoute, actor: opts.actor }, this.clock.now());
  }

  private decide(e: Envelope, envelopeId: string, opts: { agent?: string; tenant?: string; session?: SessionTarget }): AcceptRoute {
    const { registry, routing } = this.current;
    const tenant = opts.tenant ? { tenant: opts.tenant } : {};
    if (opts.agent) {
      const spec = registry.agents.get(opts.agent);
      if (!spec) throw new UnknownAgentError(opts.agent, [...registry.agents.keys()]);
      return {
        ok: true,
        agent: spec.name,
        kind: 'work',
        decision: { binding: null, tier: null, why: `addressed directly to ${spec.name}` },
        session: this.session(spec.name, opts.session ?? scopeFor(e, null, routing.sessions), e, envelopeId),
        input: envelopeInput(e, envelopeId),
        maxAttempts: spec.retry.maxAttempts,
        ...tenant,
      };
    }
    const d = route(routing.bindings, e);
    if (!d.ok) {
      return {
        ok: false,
        decision: { binding: null, why: d.why, candidates: d.candidates as unknown as Json },
        error: { code: UNROUTABLE, message: d.why, retryable: false },
      };
    }
    const spec = registry.agents.get(d.agent);
    if (!spec) {
      // A binding naming an agent the (reloaded) registry lacks: refuse rather than guess.
      return {
        ok: false,
        decision: { binding: d.binding.id, why: d.why },
        error: { code: UNROUTABLE, message: `binding ${d.binding.id} names unknown agent ${d.agent}`, retryable: false },
      };
    }
    return {
      ok: true,
      agent: spec.name,
      kind: d.binding.router ? 'router' : 'work',
      decision: {
        binding: d.binding.id,
        tier: d.binding.tier,
        why: d.why,
        candidates: d.candidates as unknown as Json,
        // Kept with the envelope, so the hand-on works even if a reload drops the binding meanwhile.
        ...(d.binding.router ? { router: d.binding.router, session: d.binding.session } : {}),
      },
      session: this.session(spec.name, opts.session ?? scopeFor(e, d.binding.session, routing.sessions), e, envelopeId),
      input: envelopeInput(e, envelopeId),
      maxAttempts: spec.retry.maxAttempts,
      ...tenant,
    };
  }

  private session(agent: string, scope: SessionTarget, e: Envelope, envelopeId: string): Extract<AcceptRoute, { ok: true }>['session'] {
    const policy = this.current.routing.sessions.reset;
    const now = this.clock.now();
    const key = typeof scope === 'string' ? sessionKey(agent, scope, e, envelopeId) : scope.key;
    return { key, agent, resetBefore: resetThreshold(policy, now) };
  }

  /** Whether some binding routes through an agent (so finished work may have envelopes to hand on). */
  get routesThroughAgents(): boolean {
    return this.current.routing.bindings.some((b) => b.router !== null);
  }

  /**
   * Finishes envelopes whose routing agent is done: its output `{"agent": "<name>"}`
   * (or just the name) picks one of the binding's candidates; anything else — an
   * unknown name, a failed router — sends the envelope to the binding's fallback.
   * Safe to call from any number of processes: each envelope is handed on once.
   */
  async sweepRouting(limit = 50): Promise<number> {
    const due = await this.store.envelopes.routingDue(limit);
    let done = 0;
    for (const { envelope, router } of due) {
      const r = this.routerChoice(envelope, router.state === 'succeeded' ? router.output : undefined);
      const now = this.clock.now();
      if ('error' in r) {
        // Nothing can take it any more (e.g. a reload removed every candidate): an error state, never a hang.
        if (await this.store.envelopes.failRouting(envelope.id, r.error, now)) done++;
        continue;
      }
      if (await this.store.envelopes.completeRouting(envelope.id, r, now)) done++;
    }
    return done;
  }

  private routerChoice(envelope: EnvelopeRecord, output: Json | undefined): Extract<AcceptRoute, { ok: true }> | { error: ErrorInfo } {
    const { registry, routing } = this.current;
    const stored = envelope.route as { binding?: string; tier?: string; router?: { agent: string; candidates: string[]; fallback: string }; session?: SessionScope | null } | null;
    const router = stored?.router;
    if (!router) return { error: { code: UNROUTABLE, message: 'routing decision lost its router settings', retryable: false } };
    const named = typeof output === 'string' ? output : output && typeof output === 'object' && !Array.isArray(output) ? output.agent : undefined;
    const valid = typeof named === 'string' && router.candidates.includes(named) && registry.agents.has(named);
    const agent = valid ? named : router.fallback;
    const why = valid
      ? `routing agent ${router.agent} chose ${agent}`
      : output === undefined
        ? `routing agent ${router.agent} failed; fallback ${agent}`
        : `routing agent ${router.agent} answered ${JSON.stringify(output)}, not one of ${router.candidates.join(', ')}; fallback ${agent}`;
    const spec = registry.agents.get(agent);
    if (!spec) return { error: { code: UNROUTABLE, message: `${why}, but agent ${agent} is not configured any more`, retryable: false } };
    return {
      ok: true,
      agent,
      kind: 'work',
      decision: { binding: stored?.binding ?? null, tier: stored?.tier ?? null, why, router: router.agent, fallback: !valid },
      session: this.session(agent, scopeFor(envelope, stored?.session ?? null, routing.sessions), envelope, envelope.id),
      input: envelopeInput(envelope, envelope.id),
      maxAttempts: spec.retry.maxAttempts,
    };
  }
}

/** A session scope, or an explicit existing session (e.g. a fork) to continue. */
export type SessionTarget = SessionScope | { key: string };

export { describeEnvelope };
