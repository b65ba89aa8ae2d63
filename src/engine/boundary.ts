import type { Clock, Timer } from '../core/clock.ts';
import { digest } from '../core/digest.ts';
import { SpineError } from '../core/errors.ts';
import { CROSSING_STAGES, hasStage, type CrossingKind, type Stage } from '../core/crossing.ts';
import { newId } from '../core/ids.ts';
import type { FieldIssue } from '../core/issues.ts';
import type { ErrorInfo, Json, Task } from '../core/types.ts';
import { ContractMismatchError, ContractViolationError } from '../contracts/registry.ts';
import { BudgetExceededError, PolicyDeniedError, RateLimitedError } from '../policy/errors.ts';
import type { Crossing, PolicyDecision, PolicyFacts, RuleResult } from '../policy/evaluate.ts';
import { escalationKey, formatCost, storeFacts } from '../policy/evaluate.ts';
import type { AuditEntry, NewApproval, Settlement, Store } from '../store/store.ts';
import { gateApprovalKey, gateSettings, type Gate, type GateSubject, type GateVerdict } from '../validation/gate.ts';
import { changedPaths, decideOutcome, type GateDecision } from '../validation/outcome.ts';
import { InvalidScopeError, ValueTooLargeError } from '../core/errors.ts';
import { keyProblem, scopeProblem } from '../core/memory.ts';
import { scopePolicyFor } from '../memory/settings.ts';
import type { AgentSpec, Cost, Registry, ToolSpec } from './options.ts';

export { BudgetExceededError, PolicyDeniedError, RateLimitedError };

/**
 * The one boundary every crossing passes (law 5): a pipeline of named stages,
 *
 *   contract → policy → gates → audit → effect
 *
 * run in that order, each crossing kind through the stages core/crossing.ts lists
 * for it. The first three decide; `audit` is the verdict's audit entries, which the
 * caller commits in the same transaction as the `effect` (or as the refusal). No
 * contract, policy or gate check lives anywhere else: intake, the task runner and
 * `spine policy explain` all come here.
 */

export type Verdict =
  /** `value`: set when a gate's fix replaced what crosses; the caller uses it for the effect. */
  | { effect: 'allow'; reservation: Settlement | null; audit: AuditEntry[]; value?: Json }
  | { effect: 'deny'; error: ErrorInfo; audit: AuditEntry[] }
  | { effect: 'defer'; until: number; ruleId: string; reason: string; audit: AuditEntry[] }
  | { effect: 'approve'; approval: NewApproval; audit: AuditEntry[] }
  | { effect: 'escalate'; error: ErrorInfo; approval: NewApproval; audit: AuditEntry[] };

/** Who crosses, and where in a run: the acting agent, its run and task, and the crossing's effect key. */
export interface CrossingContext {
  agent: string;
  /** Null only at intake, before the run exists. */
  runId: string | null;
  taskId: string | null;
  tenant: string;
  actor: string;
  /** The crossing's place in the run: its effect key; approvals are recorded against it. */
  key: string;
  /** The run's origin when a schedule or heartbeat started it (`heartbeat:<id>`); null otherwise. */
  origin?: string | null;
}

export function taskCrossing(task: Task, tenant: string, actor: string, key: string, origin: string | null = null): CrossingContext {
  return { agent: task.agent, runId: task.runId, taskId: task.id, tenant, actor, key, origin };
}

/** A payload checked against a contract at the contract stage. */
interface ContractCheck {
  id: string;
  where: string;
  /** An agent's own output: the violation goes back to it as a retryable error. */
  retryable?: boolean;
}

/** One crossing as the stages see it. */
interface Passage {
  kind: CrossingKind;
  ctx: CrossingContext;
  /** What crosses: the tool, the receiving agent, `channel:to`, the acting agent for a turn or an output. */
  name: string;
  input: Json;
  /** A handoff's contract refusal decided before any payload check (unknown or mismatched contract). */
  refused?: { error: ErrorInfo; data: Json };
  contracts: ContractCheck[];
  cost: Cost | null;
}

/** What one stage did, for `spine policy explain`. */
export interface StageStep {
  stage: Stage;
  outcome: 'pass' | 'deny' | 'skip' | 'approve' | 'defer' | 'escalate';
  detail: string;
  /** contract: which contract, and each violation. */
  contract?: string;
  violations?: FieldIssue[];
  /** policy: every rule with what it decided. */
  rules?: RuleResult[];
}

const NO_COST: Cost = { micros: 0, tokens: 0 };

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

  // ── the crossings ──────────────────────────────────────────────────────────

  /** An envelope entering for `agent`, with the run input it becomes. */
  intake(ctx: CrossingContext, spec: AgentSpec, input: Json): Promise<Verdict> {
    return this.pass({ kind: 'intake', ctx, name: spec.name, input, contracts: spec.input ? [{ id: spec.input, where: `envelope for ${spec.name}` }] : [], cost: null });
  }

  /** The agent's own turn (its model spend), checked before the agent is called. */
  turn(ctx: CrossingContext, spec: AgentSpec): Promise<Verdict> {
    // A ceiling on this run's origin (a heartbeat's maxCostUsd) rules every turn: without an estimate, nothing is
    // reserved, and the settled usage of earlier turns stops the next one.
    const cost = spec.cost ?? (this.registry.policy.hasOriginCeiling(ctx.origin) ? NO_COST : null);
    return this.pass({ kind: 'turn', ctx, name: spec.name, input: null, contracts: [], cost });
  }

  /** A tool call: its input contract, then policy, then gates. */
  tool(ctx: CrossingContext, tool: ToolSpec, input: Json): Promise<Verdict> {
    return this.pass({ kind: 'tool', ctx, name: tool.name, input, contracts: tool.input ? [{ id: tool.input, where: `input of tool ${tool.name}` }] : [], cost: tool.cost });
  }

  /** A tool's result, before the agent sees it: its output contract, then gates. */
  toolResult(ctx: CrossingContext, tool: ToolSpec, value: Json): Promise<Verdict> {
    return this.pass({ kind: 'toolResult', ctx, name: tool.name, input: value, contracts: tool.output ? [{ id: tool.output, where: `output of tool ${tool.name}` }] : [], cost: null });
  }

  /** A handoff: the payload against its declared contract and the receiver's, then policy, then gates. */
  handoff(ctx: CrossingContext, target: AgentSpec, input: Json, declared: string | undefined): Promise<Verdict> {
    return this.handoffPassage(ctx, target, input, declared, null);
  }

  private handoffPassage(ctx: CrossingContext, target: AgentSpec, input: Json, declared: string | undefined, cost: Cost | null): Promise<Verdict> {
    const expected = target.input;
    const passage: Passage = { kind: 'handoff', ctx, name: target.name, input, contracts: [], cost };
    if (declared && !this.registry.contracts.has(declared)) {
      const error = new ContractViolationError(declared, 'handoff', [{ path: '', message: `unknown contract ${declared}` }]).toInfo();
      passage.refused = { error, data: { contract: declared, agent: target.name } };
    } else if (declared && expected && !this.registry.contracts.accepts(expected, declared)) {
      passage.refused = { error: new ContractMismatchError(declared, expected).toInfo(), data: { contract: declared, expected, agent: target.name } };
    }
    for (const id of new Set([declared ?? expected, expected].filter((c): c is string => c !== null && c !== undefined))) {
      passage.contracts.push({ id, where: `handoff to ${target.name}` });
    }
    return this.pass(passage);
  }

  /**
   * A direct call over a mesh path (docs/mesh.md): checked as a handoff to the callee
   * (its contracts, the caller's handoff grants and policy, gates), and the callee's
   * turn estimate reserved against the caller's budgets.
   */
  call(ctx: CrossingContext, target: AgentSpec, input: Json, declared: string | undefined): Promise<Verdict> {
    return this.handoffPassage(ctx, target, input, declared, target.cost);
  }

  /** A child's result, before it joins its parent: gates. */
  handoffResult(ctx: CrossingContext, child: string, value: Json): Promise<Verdict> {
    return this.pass({ kind: 'handoffResult', ctx, name: child, input: value, contracts: [], cost: null });
  }

  /** A task's final output: its agent's output contract (a violation goes back to the agent, retryable), then gates. */
  output(ctx: CrossingContext, spec: AgentSpec, output: Json): Promise<Verdict> {
    return this.pass({
      kind: 'output',
      ctx,
      name: spec.name,
      input: output,
      contracts: spec.output ? [{ id: spec.output, where: `output of ${spec.name}`, retryable: true }] : [],
      cost: null,
    });
  }

  /** An outbound message on `deliver:<channel>:<to>` (allowlists, approvals, windows, rate limits), then gates. */
  deliver(ctx: CrossingContext, channel: string, to: string, payload: Json): Promise<Verdict> {
    return this.pass({ kind: 'deliver', ctx, name: `${channel}:${to}`, input: payload, contracts: [], cost: null });
  }

  /**
   * A memory write: the write's form (scope, key, sizes) and the scope's contract for
   * its value, then the agent's write grants and policy, then gates.
   */
  remember(ctx: CrossingContext, write: { scope: string; key: string; value: Json; text: string | null }): Promise<Verdict> {
    const settings = this.registry.memory;
    const input: Json = { scope: write.scope, key: write.key, value: write.value, ...(write.text === null ? {} : { text: write.text }) };
    const passage: Passage = { kind: 'remember', ctx, name: write.scope, input, contracts: [], cost: null };
    const problem = scopeProblem(write.scope) ?? keyProblem(write.key);
    const valueBytes = Buffer.byteLength(JSON.stringify(write.value));
    const textBytes = write.text === null ? 0 : Buffer.byteLength(write.text);
    if (problem) passage.refused = { error: new InvalidScopeError(problem).toInfo(), data: { scope: write.scope, key: write.key } };
    else if (valueBytes > settings.maxValueBytes) passage.refused = { error: new ValueTooLargeError('value', valueBytes, settings.maxValueBytes).toInfo(), data: { scope: write.scope, key: write.key, bytes: valueBytes } };
    else if (textBytes > settings.maxTextBytes) passage.refused = { error: new ValueTooLargeError('text', textBytes, settings.maxTextBytes).toInfo(), data: { scope: write.scope, key: write.key, bytes: textBytes } };
    const contract = problem ? null : scopePolicyFor(settings, write.scope).contract;
    // The scope's contract governs the value alone.
    if (contract) passage.contracts.push({ id: contract, where: `memory ${write.scope} ${write.key}` });
    return this.pass(passage, contract ? write.value : undefined);
  }

  /**
   * What the stages would decide for a crossing, without acquiring limits, asking
   * for approvals or writing anything (`spine policy explain`).
   */
  async explain(kind: 'tool' | 'handoff' | 'deliver' | 'turn', ctx: CrossingContext, name: string, input: Json): Promise<{ steps: StageStep[]; decision: PolicyDecision }> {
    const steps: StageStep[] = [];
    const contracts: ContractCheck[] = [];
    let cost: Cost | null = null;
    if (kind === 'tool') {
      const tool = this.registry.tools.get(name);
      if (tool?.input) contracts.push({ id: tool.input, where: `input of tool ${name}` });
      cost = tool?.cost ?? null;
    } else if (kind === 'handoff') {
      const target = this.registry.agents.get(name);
      if (target?.input) contracts.push({ id: target.input, where: `handoff to ${name}` });
    } else if (kind === 'turn') {
      cost = this.registry.agents.get(name)?.cost ?? null;
    }
    if (hasStage(kind, 'contract')) {
      if (contracts.length === 0) steps.push({ stage: 'contract', outcome: 'skip', detail: 'no contract declared' });
      for (const c of contracts) {
        const violations = this.registry.contracts.violations(c.id, input);
        const detail = violations.length ? new ContractViolationError(c.id, c.where, violations).message : `${c.where} satisfies ${c.id}`;
        steps.push({ stage: 'contract', outcome: violations.length ? 'deny' : 'pass', detail, contract: c.id, violations });
      }
    }
    const crossing = this.policyCrossing({ kind, ctx, name, input, contracts, cost });
    const decision = await this.registry.policy.evaluate(crossing, this.clock.now(), this.facts, { explain: true });
    steps.push({ stage: 'policy', outcome: decision.effect === 'allow' ? 'pass' : decision.effect, detail: decision.reason, rules: decision.trace });
    const gates = this.gatesFor(this.subject({ kind, ctx, name, input, contracts, cost }));
    steps.push({ stage: 'gates', outcome: gates.length ? 'pass' : 'skip', detail: gates.length ? `gates ${gates.map((g) => g.id).join(', ')} run on the live input` : 'no gate on this crossing' });
    return { steps, decision };
  }

  /**
   * Runs one gate on one subject and says what it would decide, writing nothing
   * (`spine gates test`): no verdict is recorded, no reask counted, no approval asked.
   */
  async testGate(id: string, subject: GateSubject): Promise<{ gate: Gate; decision: GateDecision } | null> {
    const gate = (this.registry.gates ?? []).find((g) => g.id === id);
    if (!gate) return null;
    const settings = gateSettings(gate);
    return { gate, decision: decideOutcome(settings, await this.runCheck(gate, subject, settings.timeoutMs), 0) };
  }

  /** Spend to settle after a turn: the agent's reported usage, else the estimate. */
  turnSettlement(reservation: Settlement | null, usage: { costUsd?: number; inputTokens?: number; outputTokens?: number } | null): Settlement[] {
    if (!reservation) return [];
    const tokens = usage && (usage.inputTokens !== undefined || usage.outputTokens !== undefined) ? (usage.inputTokens ?? 0) + (usage.outputTokens ?? 0) : reservation.tokens;
    const micros = usage?.costUsd !== undefined ? Math.round(usage.costUsd * 1e6) : reservation.micros;
    return [{ reservationId: reservation.reservationId, micros, tokens }];
  }

  // ── the pipeline ───────────────────────────────────────────────────────────

  /** Runs the crossing's stages in order; the first that does not let it through decides. */
  private async pass(p: Passage, contractInput?: Json): Promise<Verdict> {
    const audit: AuditEntry[] = [];
    let reservation: Settlement | null = null;
    let replaced: Json | undefined;
    for (const stage of CROSSING_STAGES[p.kind] as readonly Stage[]) {
      let verdict: Verdict | null = null;
      switch (stage) {
        case 'contract':
          verdict = await this.contractStage(contractInput === undefined ? p : { ...p, input: contractInput }, audit);
          break;
        case 'policy': {
          const outcome = await this.policyStage(p, audit);
          if ('effect' in outcome) verdict = outcome;
          else reservation = outcome.reservation;
          break;
        }
        case 'gates': {
          const gated = await this.gatesStage(p, audit);
          // A fix: the replacement goes on to the effect.
          if (gated?.effect === 'allow') replaced = gated.value;
          else verdict = gated;
          break;
        }
        case 'audit':
        case 'effect':
          // The caller commits `audit` with its durable effect, in one transaction.
          break;
      }
      if (verdict) {
        // A refusal after policy reserved spend gives it back at once.
        if (reservation) await this.store.limits.settle({ ...reservation, micros: 0, tokens: 0 }, this.clock.now());
        return verdict;
      }
    }
    return { effect: 'allow', reservation, audit, ...(replaced === undefined ? {} : { value: replaced }) };
  }

  private base(ctx: CrossingContext): Omit<AuditEntry, 'kind'> {
    return { runId: ctx.runId, taskId: ctx.taskId, agent: ctx.agent, actor: ctx.actor };
  }

  private async contractStage(p: Passage, audit: AuditEntry[]): Promise<Verdict | null> {
    const base = this.base(p.ctx);
    const subject: Record<string, Json> = p.kind === 'tool' || p.kind === 'toolResult' ? { tool: p.name } : { agent: p.name };
    if (p.refused) {
      audit.push({ ...base, kind: 'contract.rejected', data: { key: p.ctx.key, crossing: p.kind, ...(p.refused.data as Record<string, Json>) } });
      return { effect: 'deny', error: p.refused.error, audit };
    }
    for (const c of p.contracts) {
      await this.recordContract(c.id);
      const violations = this.registry.contracts.violations(c.id, p.input);
      if (violations.length === 0) continue;
      const error = new ContractViolationError(c.id, c.where, violations, c.retryable ? { retryable: true } : {}).toInfo();
      audit.push({ ...base, kind: 'contract.rejected', data: { key: p.ctx.key, crossing: p.kind, contract: c.id, ...subject, violations: error.details ?? null } });
      return { effect: 'deny', error, audit };
    }
    return null;
  }

  /**
   * Gates, in config order, strictly before the effect. A check that throws or
   * outlives its timeout is an error (fail closed unless `onError: 'warn'`). Every
   * verdict is an audit event (and, in the store, a gate_verdicts record); a
   * shadow gate is evaluated and recorded but never enforced. A fix replaces the
   * value that goes on to the next gate and to the effect (`Verdict.value`).
   */
  private async gatesStage(p: Passage, audit: AuditEntry[]): Promise<Verdict | null> {
    const gates = this.gatesFor(this.subject(p));
    if (gates.length === 0) return null;
    let value = p.input;
    for (const gate of gates) {
      const settings = gateSettings(gate);
      const subject = this.subject(p, value);
      const inputDigest = digest(value);
      const check = await this.runCheck(gate, subject, settings.timeoutMs);
      const reasks = !('error' in check) && check.verdict === 'fail' && settings.onFail === 'reask' && settings.mode === 'enforce' && p.ctx.taskId
        ? await this.store.verdicts.count({ taskId: p.ctx.taskId, gate: gate.id, outcome: 'reask' })
        : 0;
      const decision = decideOutcome(settings, check, reasks);
      let outcome = decision.outcome;
      const approvalKey = gateApprovalKey(p.ctx.key, gate.id);
      if (outcome === 'escalate' && settings.mode === 'enforce') {
        // A person already decided this crossing: their answer is the outcome.
        const decided = (await this.store.approvals.decisionFor(approvalKey))?.state;
        if (decided === 'approved') outcome = 'pass';
        else if (decided === 'denied' || decided === 'expired' || decided === 'cancelled') outcome = 'block';
      }
      const data: Record<string, Json> = {
        key: p.ctx.key,
        crossing: p.kind,
        name: p.name,
        gate: gate.id,
        mode: settings.mode,
        verdict: decision.verdict,
        outcome,
        reasons: decision.reasons,
        inputDigest,
        configVersion: this.registry.gatesVersion ?? 'code',
      };
      if (outcome === 'fix' && decision.fix !== undefined) data.fix = { digest: digest(decision.fix), changed: changedPaths(value, decision.fix) };
      audit.push({ ...this.base(p.ctx), kind: 'gate.verdict', digest: inputDigest, data });
      if (settings.mode === 'shadow') continue;
      const details = { gate: gate.id, reasons: decision.reasons };
      switch (outcome) {
        case 'pass':
        case 'warn':
          continue;
        case 'fix':
          value = decision.fix ?? value;
          continue;
        case 'reask':
          return { effect: 'deny', error: new SpineError('GATE_REASK', `gate ${gate.id} asks again: ${decision.reasons.join('; ')}`, { details }).toInfo(), audit };
        case 'block':
          return { effect: 'deny', error: new SpineError('GATE_BLOCKED', `gate ${gate.id} blocked: ${decision.reasons.join('; ')}`, { details }).toInfo(), audit };
        case 'escalate': {
          const { runId, taskId } = p.ctx;
          if (runId === null || taskId === null) {
            return { effect: 'deny', error: new SpineError('GATE_BLOCKED', `gate ${gate.id} needs a person, and ${p.kind} crossings cannot wait`, { details }).toInfo(), audit };
          }
          const approval: NewApproval = {
            runId,
            taskId,
            agent: p.ctx.agent,
            actionKey: approvalKey,
            action: { kind: p.kind, name: p.name, input: value },
            kind: 'approval',
            ruleId: `gate:${gate.id}`,
            reason: `gate ${gate.id}: ${decision.reasons.join('; ')}`,
            approvers: settings.approvers,
            expiresAt: null,
            onExpiry: null,
          };
          return { effect: 'approve', approval, audit };
        }
      }
    }
    return value === p.input ? null : { effect: 'allow', reservation: null, audit, value };
  }

  /** One check under the gate's timeout; a throw or a timeout is an error, never a pass. */
  private async runCheck(gate: Gate, subject: GateSubject, timeoutMs: number): Promise<GateVerdict | { error: string }> {
    const ctl = new AbortController();
    let timer: Timer | undefined;
    const timeout = new Promise<{ error: string }>((resolve) => {
      timer = this.clock.timer(timeoutMs, () => {
        ctl.abort(new Error(`timed out after ${timeoutMs} ms`));
        resolve({ error: `timed out after ${timeoutMs} ms` });
      });
    });
    try {
      return await Promise.race([gate.check(subject, ctl.signal), timeout]);
    } catch (err) {
      return { error: err instanceof Error ? err.message : String(err) };
    } finally {
      timer?.cancel();
    }
  }

  private gatesFor(subject: GateSubject) {
    return (this.registry.gates ?? []).filter((g) => g.on === subject.crossing && g.applies(subject));
  }

  private subject(p: Passage, value: Json = p.input): GateSubject {
    return { crossing: p.kind, name: p.name, agent: p.ctx.agent, runId: p.ctx.runId, taskId: p.ctx.taskId, key: p.ctx.key, value };
  }

  private async recordContract(id: string): Promise<void> {
    if (this.recorded.has(id)) return;
    const c = this.registry.contracts.get(id);
    if (!c) return;
    await this.store.contracts.record(c.id, c.digest, c.schema, this.clock.now());
    this.recorded.add(id);
  }

  private policyCrossing(p: Passage): Crossing {
    const kind = p.kind === 'tool' || p.kind === 'handoff' || p.kind === 'deliver' || p.kind === 'turn' || p.kind === 'remember' ? p.kind : null;
    const { runId, taskId } = p.ctx;
    // core/crossing.ts gives a policy stage only to crossings made by a task.
    if (!kind || runId === null || taskId === null) throw new Error(`no policy stage for ${p.kind} crossings`);
    return { kind, name: p.name, input: p.input, cost: p.cost, agent: p.ctx.agent, runId, taskId, tenant: p.ctx.tenant, key: p.ctx.key, origin: p.ctx.origin ?? null };
  }

  /** Policy: a decision, then the shared limits (rate buckets, reserved spend), all or nothing. */
  private async policyStage(p: Passage, audit: AuditEntry[]): Promise<Verdict | { reservation: Settlement | null }> {
    const { ctx } = p;
    const policy = this.registry.policy;
    // A turn is only ruled by cost ceilings: without a spend estimate or a ceiling, it needs no decision.
    if (p.kind === 'turn' && (!p.cost || policy.policy.ceilings.length === 0)) return { reservation: null };
    const crossing = this.policyCrossing(p);
    const base = this.base(ctx);
    const action = `${crossing.kind}:${crossing.name}`;
    if (policy.isUnruled(crossing)) return { reservation: null };

    const now = this.clock.now();
    const decision = await policy.evaluate(crossing, now, this.facts);
    audit.push(decisionEvent(base, ctx.key, action, decision));
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
            runId: crossing.runId,
            taskId: crossing.taskId,
            agent: ctx.agent,
            actionKey: ctx.key,
            action: { kind: crossing.kind, name: crossing.name, input: crossing.input },
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
    if (!decision.limits) return { reservation: null };
    const reservationId = newId('rsv');
    const limits = decision.limits;
    const result = await this.store.limits.acquire(
      { ...limits, reservationId, runId: crossing.runId, taskId: crossing.taskId, expiresAt: now + this.reservationTtl(ctx.agent), holder: ctx.actor },
      now,
    );
    if (result.ok) {
      if (!result.reservationId) return { reservation: null };
      audit.push({ ...base, kind: 'cost.reserved', data: { key: ctx.key, reservation: reservationId, micros: limits.micros, tokens: limits.tokens, ruleIds: limits.budgets.map((b) => b.ruleId) } });
      return { reservation: { reservationId, micros: limits.micros, tokens: limits.tokens } };
    }
    if (result.kind === 'rate') {
      audit.push({ ...base, kind: 'policy.rate-limited', data: { key: ctx.key, action, ruleId: result.ruleId, retryAt: result.retryAt, onExceeded: result.onExceeded } });
      if (result.onExceeded === 'wait') {
        return { effect: 'defer', until: result.retryAt, ruleId: result.ruleId, reason: `rate limit ${result.ruleId}: waiting for a token`, audit };
      }
      return { effect: 'deny', error: new RateLimitedError(result.ruleId, result.retryAt).toInfo(), audit };
    }
    const fails = policy.policy.ceilings.find((r) => r.id === result.ruleId)?.onExceeded === 'fail';
    const error = new BudgetExceededError(result.ruleId, result.key, fails ? 'stopped' : 'escalated').toInfo();
    audit.push({ ...base, kind: 'cost.ceiling-reached', data: { key: ctx.key, action, ruleId: result.ruleId, budget: result.key, wanted: formatCost(limits), ...(fails ? { then: 'stopped' } : {}) } });
    // A heartbeat's own ceiling stops the spend without paging anyone: the task fails.
    if (fails) return { effect: 'deny', error, audit };
    return {
      effect: 'escalate',
      error,
      approval: {
        runId: crossing.runId,
        taskId: crossing.taskId,
        agent: ctx.agent,
        actionKey: escalationKey(ctx.key),
        action: { kind: crossing.kind, name: crossing.name, input: crossing.input },
        kind: 'escalation',
        ruleId: result.ruleId,
        reason: `cost ceiling ${result.ruleId} reached (${result.key}); approve to let this ${crossing.kind} spend over it, deny to stop the task`,
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
