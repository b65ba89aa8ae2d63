import type { Clock } from '../core/clock.ts';
import { UnknownAgentError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import type { Json } from '../core/types.ts';
import type { Registry } from '../engine/options.ts';
import { describeEnvelope, route, type Binding, type RouteDecision } from '../routing/bindings.ts';
import { scopeFor, sessionKey, shouldReset, type SessionScope, type SessionSettings } from '../routing/sessions.ts';
import type { AcceptResult, AcceptRoute, EnvelopeRecord, Store } from '../store/store.ts';
import type { Envelope } from './envelope.ts';

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
  private current: { registry: Registry; routing: RoutingConfig };

  constructor(store: Store, registry: Registry, routing: RoutingConfig, clock: Clock) {
    this.store = store;
    this.clock = clock;
    this.current = { registry, routing };
  }

  /** Swaps in a reloaded config; envelopes already accepted keep their decisions. */
  reconfigure(registry: Registry, routing: RoutingConfig): void {
    this.current = { registry, routing };
  }

  /** The routing decision for an envelope, without storing anything (`spine route explain`). */
  explain(e: Envelope): RouteDecision {
    return route(this.current.routing.bindings, e);
  }

  /**
   * Stores the envelope and its run atomically. `agent` skips the bindings and sends
   * the envelope straight to that agent (operator API calls, `spine send`).
   */
  async accept(e: Envelope, opts: { actor: string; agent?: string; tenant?: string }): Promise<AcceptResult> {
    const envelopeId = newId('env');
    const acceptRoute = this.decide(e, envelopeId, opts);
    return this.store.acceptEnvelope({ envelope: e, envelopeId, route: acceptRoute, actor: opts.actor }, this.clock.now());
  }

  private decide(e: Envelope, envelopeId: string, opts: { agent?: string; tenant?: string }): AcceptRoute {
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
        session: this.session(spec.name, scopeFor(e, null, routing.sessions), e, envelopeId),
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
      decision: { binding: d.binding.id, tier: d.binding.tier, why: d.why, candidates: d.candidates as unknown as Json },
      session: this.session(spec.name, scopeFor(e, d.binding.session, routing.sessions), e, envelopeId),
      maxAttempts: spec.retry.maxAttempts,
      ...tenant,
    };
  }

  private session(agent: string, scope: SessionScope, e: Envelope, envelopeId: string): Extract<AcceptRoute, { ok: true }>['session'] {
    const policy = this.current.routing.sessions.reset;
    const now = this.clock.now();
    return { key: sessionKey(agent, scope, e, envelopeId), agent, resetDue: (last) => shouldReset(policy, last, now) };
  }

  /**
   * Finishes envelopes whose routing agent is done: its output `{"agent": "<name>"}`
   * (or just the name) picks one of the binding's candidates; anything else — an
   * unknown name, a failed router — sends the envelope to the binding's fallback.
   * Safe to call from any number of processes: each envelope is handed on once.
   */
  async sweepRouting(limit = 50): Promise<number> {
    const due = await this.store.routingDue(limit);
    let done = 0;
    for (const { envelope, router } of due) {
      const r = this.routerChoice(envelope, router.state === 'succeeded' ? router.output : undefined);
      if (!r) continue;
      if (await this.store.completeRouting(envelope.id, r, this.clock.now())) done++;
    }
    return done;
  }

  private routerChoice(envelope: EnvelopeRecord, output: Json | undefined): Extract<AcceptRoute, { ok: true }> | null {
    const { registry, routing } = this.current;
    const bindingId = (envelope.route as { binding?: string } | null)?.binding;
    const binding = routing.bindings.find((b) => b.id === bindingId);
    if (!binding?.router) return null;
    const named = typeof output === 'string' ? output : output && typeof output === 'object' && !Array.isArray(output) ? output.agent : undefined;
    const valid = typeof named === 'string' && binding.router.candidates.includes(named) && registry.agents.has(named);
    const agent = valid ? named : binding.router.fallback;
    const why = valid
      ? `routing agent ${binding.router.agent} chose ${agent}`
      : output === undefined
        ? `routing agent ${binding.router.agent} failed; fallback ${agent}`
        : `routing agent ${binding.router.agent} answered ${JSON.stringify(output)}, not one of ${binding.router.candidates.join(', ')}; fallback ${agent}`;
    const spec = registry.agents.get(agent);
    if (!spec) return null;
    return {
      ok: true,
      agent,
      kind: 'work',
      decision: { binding: binding.id, tier: binding.tier, why, router: binding.router.agent, fallback: !valid },
      session: this.session(agent, scopeFor(envelope, binding.session, routing.sessions), envelope, envelope.id),
      maxAttempts: spec.retry.maxAttempts,
    };
  }
}

export { describeEnvelope };
