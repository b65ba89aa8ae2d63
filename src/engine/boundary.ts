import type { Clock } from '../core/clock.ts';
import { SpineError, type FieldIssue } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import type { ErrorInfo, Json, Task } from '../core/types.ts';
import { ContractMismatchError, ContractViolationError } from '../contracts/registry.ts';
import type { Crossing, PolicyDecision, PolicyFacts } from '../policy/evaluate.ts';
import { escalationKey, formatCost, storeFacts } from '../policy/evaluate.ts';
import type { AuditEntry, NewApproval, Settlement, Store } from '../store/store.ts';
import type { AgentSpec, Cost, Registry } from './options.ts';

/**
 * The one boundary every crossing passes (law 5): contract validation → policy
 * decision → audit record → (the caller's) durable effect. The task runner calls it
 * for tool calls, handoffs and the agent turn itself (its spend); intake and
 * outbound delivery will call it the same way.
 */

/** A crossing refused by policy. Delivered to the agent as the action's result. */
export class PolicyDeniedError extends SpineError {
  readonly ruleId: string | null;
  constructor(ruleId: string | null, reason: string) {
    super('POLICY_DENIED', `refused by ${ruleId ?? 'policy'}: ${reason}`, { retryable: false, details: { ruleId } });
    this.ruleId = ruleId;
  }
}

/** A rate limit with onExceeded: fail. */
export class RateLimitedError extends SpineError {
  readonly ruleId: string;
  readonly retryAt: number;
  constructor(ruleId: string, retryAt: number) {
    super('RATE_LIMITED', `rate limit ${ruleId} exceeded; next token at ${new Date(retryAt).toISOString()}`, {
      retryable: true,
      details: { ruleId, retryAt },
    });
    this.ruleId = ruleId;
    this.retryAt = retryAt;
  }
}

/** A cost ceiling was reached: spend stops and the task escalates to a human. */
export class BudgetExceededError extends SpineError {
  readonly ruleId: string;
  constructor(ruleId: string, key: string) {
    super('BUDGET_EXCEEDED', `cost ceiling ${ruleId} reached (${key}); escalated to a human`, { retryable: false, details: { ruleId, key } });
    this.ruleId = ruleId;
  }
}

export type Verdict =
  | { effect: 'allow'; reservation: Settlement | null; audit: AuditEntry[] }
  | { effect: 'deny'; error: ErrorInfo; audit: AuditEntry[] }
  | { effect: 'defer'; until: number; ruleId: string; reason: string; audit: AuditEntry[] }
  | { effect: 'approve'; approval: NewApproval; audit: AuditEntry[] }
  | { effect: 'escalate'; error: ErrorInfo; approval: NewApproval; audit: AuditEntry[] };

export interface CrossingContext {
  task: Task;
  tenant: string;
  actor: string;
  /** The action's place in the run: the effect key. */
  key: string;
}

/** How long an unsettled reservation lives before the reaper releases it. */
const RESERVATION_SLACK_MS = 60_000;

export class Boundary {
  private readonly store: Store;
  private readonly registry: Registry;
  private readonly clock: Clock;
  private readonly facts: PolicyFacts;
  private readonly recorded = new Set<string>();
  private readonly grants = new Map<string, { tools: string[]; agents: string[] }>();

  constructor(store: Store, registry: Registry, clock: Clock) {
    this.store = store;
    this.registry = registry;
    this.clock = clock;
    this.facts = storeFacts(store);
  }

  /** What the agent may name in its actions, for its turn input; computed once per agent (a reload builds a new Boundary). */
  grantsFor(agent: string): { tools: string[]; agents: string[] } {
    let g = this.grants.get(agent);
    if (!g) {
      const { policy, tools, agents } = this.registry;
      g = { tools: policy.grantedTools(agent, tools.keys()), agents: [...agents.keys()].filter((a) => policy.handoffGranted(agent, a)) };
      this.grants.set(agent, g);
    }
    return g;
  }

  /** A tool call: its input contract, then policy. */
  async tool(ctx: CrossingContext, tool: string, input: Json): Promise<Verdict> {
    const spec = this.registry.tools.get(tool);
    const base = this.auditBase(ctx);
    if (spec?.input) {
      const violations = await this.violations(spec.input, input);
      if (violations.length) {
        const error = new ContractViolationError(spec.input, `input of tool ${tool}`, violations).toInfo();
        return { effect: 'deny', error, audit: [{ ...base, kind: 'contract.rejected', data: { key: ctx.key, contract: spec.input, tool, violations: error.details ?? null } }] };
      }
    }
    return this.decide(ctx, { kind: 'tool', name: tool, input, cost: spec?.cost ?? null });
  }

  /** A handoff: the payload against its declared contract and the receiver's, then policy. */
  async handoff(ctx: CrossingContext, target: AgentSpec, input: Json, declared: string | undefined): Promise<Verdict> {
    const base = this.auditBase(ctx);
    const expected = target.input;
    const contract = declared ?? expected;
    if (declared && !this.registry.contracts.has(declared)) {
      const error = new ContractViolationError(declared, 'handoff', [{ path: '', message: `unknown contract ${declared}` }]).toInfo();
      return { effect: 'deny', error, audit: [{ ...base, kind: 'contract.rejected', data: { key: ctx.key, contract: declared, agent: target.name } }] };
    }
    if (declared && expected && !this.registry.contracts.accepts(expected, declared)) {
      const error = new ContractMismatchError(declared, expected).toInfo();
      return { effect: 'deny', error, audit: [{ ...base, kind: 'contract.rejected', data: { key: ctx.key, contract: declared, expected, agent: target.name } }] };
    }
    for (const id of new Set([contract, expected].filter((c): c is string => c !== null && c !== undefined))) {
      const violations = await this.violations(id, input);
      if (violations.length) {
        const error = new ContractViolationError(id, `handoff to ${target.name}`, violations).toInfo();
        return { effect: 'deny', error, audit: [{ ...base, kind: 'contract.rejected', data: { key: ctx.key, contract: id, agent: target.name, violations: error.details ?? null } }] };
      }
    }
    return this.decide(ctx, { kind: 'handoff', name: target.name, input, cost: null });
  }

  /** An outbound message: policy on `deliver:<channel>:<to>` (allowlists, approvals, windows, rate limits). */
  async deliver(ctx: CrossingContext, channel: string, to: string, input: Json): Promise<Verdict> {
    return this.decide(ctx, { kind: 'deliver', name: `${channel}:${to}`, input, cost: null });
  }

  /** The agent's own turn (its model spend), checked before the agent is called. */
  async turn(ctx: CrossingContext, spec: AgentSpec): Promise<Verdict> {
    if (!spec.cost || this.registry.policy.policy.ceilings.length === 0) return { effect: 'allow', reservation: null, audit: [] };
    return this.decide(ctx, { kind: 'turn', name: spec.name, input: null, cost: spec.cost });
  }

  /** Throws ContractViolationError (retryable: the agent gets the violations back) when an output breaks its contract. */
  async checkOutput(spec: AgentSpec, output: Json): Promise<void> {
    if (!spec.output) return;
    const violations = await this.violations(spec.output, output);
    if (violations.length) throw new ContractViolationError(spec.output, `output of ${spec.name}`, violations, { retryable: true });
  }

  /** Spend to settle after a turn: the agent's reported usage, else the estimate. */
  turnSettlement(reservation: Settlement | null, usage: { costUsd?: number; inputTokens?: number; outputTokens?: number } | null): Settlement[] {
    if (!reservation) return [];
    const tokens = usage && (usage.inputTokens !== undefined || usage.outputTokens !== undefined) ? (usage.inputTokens ?? 0) + (usage.outputTokens ?? 0) : reservation.tokens;
    const micros = usage?.costUsd !== undefined ? Math.round(usage.costUsd * 1e6) : reservation.micros;
    return [{ reservationId: reservation.reservationId, micros, tokens }];
  }

  private auditBase(ctx: CrossingContext) {
    return { runId: ctx.task.runId, taskId: ctx.task.id, agent: ctx.task.agent, actor: ctx.actor };
  }

  private async violations(contract: string, value: Json): Promise<FieldIssue[]> {
    if (!this.recorded.has(contract)) {
      const c = this.registry.contracts.get(contract);
      if (c) {
        await this.store.contracts.record(c.id, c.digest, c.schema, this.clock.now());
        this.recorded.add(contract);
      }
    }
    return this.registry.contracts.violations(contract, value);
  }

  private async decide(ctx: CrossingContext, what: { kind: Crossing['kind']; name: string; input: Json; cost: Cost | null }): Promise<Verdict> {
    const crossing: Crossing = { ...what, agent: ctx.task.agent, runId: ctx.task.runId, taskId: ctx.task.id, tenant: ctx.tenant, key: ctx.key };
    const policy = this.registry.policy;
    const base = this.auditBase(ctx);
    const action = `${what.kind}:${what.name}`;
    if (policy.isUnruled(crossing)) return { effect: 'allow', reservation: null, audit: [] };

    const now = this.clock.now();
    const decision = await policy.evaluate(crossing, now, this.facts);
    const audit: AuditEntry[] = [decisionEvent(base, ctx.key, action, decision)];
    for (const ruleId of decision.notify) {
      audit.push({ ...base, kind: 'operator.notified', data: { ruleId, key: ctx.key, action, why: 'notify tier' } });
    }
    switch (decision.effect) {
      case 'deny':
        return { effect: 'deny', error: new PolicyDeniedError(decision.ruleId, decision.reason).toInfo(), audit };
      case 'defer':
        return { effect: 'defer', until: decision.until!, ruleId: decision.ruleId!, reason: decision.reason, audit };
      case 'approve': {
        const a = decision.approval!;
        return {
          effect: 'approve',
          approval: {
            runId: ctx.task.runId,
            taskId: ctx.task.id,
            agent: ctx.task.agent,
            actionKey: ctx.key,
            action: { kind: what.kind, name: what.name, input: what.input },
            kind: 'approval',
            ruleId: a.ruleId,
            reason: a.reason,
            approvers: a.approvers,
            expiresAt: now + a.expiresInMs,
            onExpiry: a.onExpiry,
          },
          audit,
        };
      }
      case 'allow':
        break;
    }
    if (!decision.limits) return { effect: 'allow', reservation: null, audit };
    const reservationId = newId('rsv');
    const limits = decision.limits;
    const result = await this.store.limits.acquire(
      { ...limits, reservationId, runId: ctx.task.runId, taskId: ctx.task.id, expiresAt: now + this.reservationTtl(ctx.task.agent) },
      now,
    );
    if (result.ok) {
      if (result.reservationId) {
        audit.push({ ...base, kind: 'cost.reserved', data: { key: ctx.key, reservation: reservationId, micros: limits.micros, tokens: limits.tokens, ruleIds: limits.budgets.map((b) => b.ruleId) } });
      }
      return { effect: 'allow', reservation: result.reservationId ? { reservationId, micros: limits.micros, tokens: limits.tokens } : null, audit };
    }
    if (result.kind === 'rate') {
      audit.push({ ...base, kind: 'policy.rate-limited', data: { key: ctx.key, action, ruleId: result.ruleId, retryAt: result.retryAt, onExceeded: result.onExceeded } });
      if (result.onExceeded === 'wait') {
        return { effect: 'defer', until: result.retryAt, ruleId: result.ruleId, reason: `rate limit ${result.ruleId}: waiting for a token`, audit };
      }
      return { effect: 'deny', error: new RateLimitedError(result.ruleId, result.retryAt).toInfo(), audit };
    }
    const error = new BudgetExceededError(result.ruleId, result.key).toInfo();
    audit.push({ ...base, kind: 'cost.ceiling-reached', data: { key: ctx.key, action, ruleId: result.ruleId, budget: result.key, wanted: formatCost(limits) } });
    return {
      effect: 'escalate',
      error,
      approval: {
        runId: ctx.task.runId,
        taskId: ctx.task.id,
        agent: ctx.task.agent,
        actionKey: escalationKey(ctx.key),
        action: { kind: what.kind, name: what.name, input: what.input },
        kind: 'escalation',
        ruleId: result.ruleId,
        reason: `cost ceiling ${result.ruleId} reached (${result.key}); approve to let this ${what.kind} spend over it, deny to stop the task`,
        approvers: 'operators',
        expiresAt: null,
        onExpiry: null,
      },
      audit,
    };
  }

  private reservationTtl(agent: string): number {
    return (this.registry.agents.get(agent)?.timeoutMs ?? 120_000) + RESERVATION_SLACK_MS;
  }
}

function decisionEvent(base: Omit<AuditEntry, 'kind'>, key: string, action: string, d: PolicyDecision): AuditEntry {
  return {
    ...base,
    kind: 'policy.decision',
    data: {
      key,
      action,
      effect: d.effect,
      ruleId: d.ruleId,
      reason: d.reason,
      rules: d.trace.map((t) => ({ ruleId: t.ruleId, outcome: t.outcome })),
    },
  };
}
