import { localTime } from '../core/zoned-time.ts';
import type { Json } from '../core/types.ts';
import { NO_MEMORY_GRANTS, resolveGrants, scopeAllowed, type MemoryGrants } from '../core/memory.ts';
import type { ApprovalState } from '../core/states.ts';
import type { BucketTake, BudgetReserve, Store } from '../store/store.ts';
import { actionString, anyMatch, matches } from '../core/patterns.ts';
import type { Allowlist, ApprovalTier, CompiledPolicy, CostCeiling, RateLimit } from './rules.ts';
import { ALL_DURABLE_WRITES, type DurableWritesFrom } from '../memory/settings.ts';
import { isOpen, nextOpening } from './windows.ts';

/**
 * The policy engine: deterministic evaluation of one crossing against the rules,
 * in a fixed, documented order (docs/policy.md):
 *
 *   1. grants          — the agent must hold an explicit grant (tools); deny wins over allow
 *   2. allowlists      — every recipient/domain/channel the action reaches must be listed
 *   3. approval tiers  — deny / approve (unless approved or a standing grant) / notify / auto
 *   4. time windows    — outside its window an action is deferred to the next opening
 *   5. rate limits     — a token from each matching bucket, or wait (defer) / fail (deny)
 *   6. cost ceilings   — the estimate is reserved on every matching budget, or the task escalates
 *
 * Steps 1–4 are pure. Steps 5–6 change shared state, so they are returned as a
 * `LimitRequest` that the store applies atomically (all buckets and budgets, or none).
 */

export type Effect = 'allow' | 'deny' | 'approve' | 'defer';

export interface Crossing {
  kind: 'tool' | 'handoff' | 'deliver' | 'turn' | 'remember';
  /** Tool name, target agent, `channel:recipient`, the agent itself for a turn, the scope of a memory write. */
  name: string;
  /** The acting agent. */
  agent: string;
  runId: string;
  taskId: string;
  tenant: string;
  input: Json;
  /** The action's place in the run; approvals are recorded against it. */
  key: string;
  /** Spend to reserve if the crossing goes ahead. */
  cost: { micros: number; tokens: number } | null;
  /** The run's origin when a schedule or heartbeat started it (`schedule:<id>`, `heartbeat:<id>`). */
  origin?: string | null;
}

export interface Grants {
  tools: { allow: readonly string[]; deny: readonly string[] };
  handoffs: { allow: readonly string[]; deny: readonly string[] } | null;
  /** Shared memory: the scopes it may read and write (denied by default). */
  memory?: MemoryGrants;
}

export interface RuleResult {
  ruleId: string;
  kind: string;
  outcome: 'pass' | 'skip' | 'allow' | 'deny' | 'approve' | 'defer' | 'notify' | 'escalate' | 'approved' | 'granted';
  reason: string;
}

export interface LimitRequest {
  takes: BucketTake[];
  budgets: BudgetReserve[];
  micros: number;
  tokens: number;
}

export interface ApprovalRequest {
  ruleId: string;
  approvers: string;
  expiresInMs: number;
  onExpiry: ApprovalTier['onExpiry'];
  reason: string;
}

export interface PolicyDecision {
  effect: Effect;
  ruleId: string | null;
  reason: string;
  /** defer: when to try again. */
  until?: number;
  /** approve: what to ask. */
  approval?: ApprovalRequest;
  /** notify-tier rules that matched (the action proceeds; operators are told). */
  notify: string[];
  /** allow: the shared limits still to acquire. */
  limits: LimitRequest | null;
  trace: RuleResult[];
}

export interface ApprovalFact {
  state: ApprovalState;
  decidedBy?: string | null;
  reason?: string | null;
}

/** Facts from the store the pure steps need; fetched only when a rule asks. */
export interface PolicyFacts {
  /** The latest approval recorded for this action key, if any: its state, and who decided why. */
  approvalFor(key: string): Promise<ApprovalFact | null>;
  standingGrant(agent: string, action: string, now: number): Promise<boolean>;
  /** The ceiling an operator raised a budget to when approving an escalation, if any. */
  raisedCeiling?(budgetKey: string): Promise<number | null>;
}

export const NO_FACTS: PolicyFacts = { approvalFor: async () => null, standingGrant: async () => false };

/** The facts as the store holds them. The store returns the standing grants; which ones cover an action is decided here. */
export function storeFacts(store: Pick<Store, 'approvals' | 'grants' | 'limits'>): PolicyFacts {
  return {
    approvalFor: (key) => store.approvals.decisionFor(key),
    standingGrant: async (agent, action, now) => (await store.grants.list({ agent, activeAt: now })).some((g) => matches(g.action, action)),
    raisedCeiling: (key) => store.limits.raisedCeiling(key),
  };
}

const appliesTo = (rule: { agents: readonly string[] | null }, agent: string) => rule.agents === null || anyMatch(rule.agents, agent);

export function grantAllows(list: { allow: readonly string[]; deny: readonly string[] }, name: string): 'allow' | 'deny' | 'none' {
  if (anyMatch(list.deny, name)) return 'deny';
  if (anyMatch(list.allow, name)) return 'allow';
  return 'none';
}

export class PolicyEngine {
  readonly policy: CompiledPolicy;
  private readonly grants: ReadonlyMap<string, Grants>;
  private readonly durableWrites: DurableWritesFrom;

  constructor(policy: CompiledPolicy, grants: ReadonlyMap<string, Grants>, durableWrites: DurableWritesFrom = ALL_DURABLE_WRITES) {
    this.policy = policy;
    this.grants = grants;
    this.durableWrites = durableWrites;
  }

  /** Whether a ceiling counts only this origin's runs (a heartbeat's maxCostUsd): its turns are then reserved even without an estimate. */
  hasOriginCeiling(origin: string | null | undefined): boolean {
    return !!origin && this.policy.ceilings.some((r) => r.origin === origin);
  }

  /**
   * Why memory.durableWritesFrom refuses this write, or null. Durable: any scope but the
   * run's own (`run/<id>` and below). `schedule: false` covers heartbeats too (a heartbeat is a schedule).
   */
  durableWriteRefusal(c: Pick<Crossing, 'kind' | 'name' | 'runId' | 'origin'>): string | null {
    if (c.kind !== 'remember' || !c.origin) return null;
    const kind = c.origin.slice(0, c.origin.indexOf(':'));
    const field = kind === 'heartbeat' && !this.durableWrites.heartbeat ? 'heartbeat' : (kind === 'heartbeat' || kind === 'schedule') && !this.durableWrites.schedule ? 'schedule' : null;
    if (field === null) return null;
    const own = `run/${c.runId}`;
    if (c.name === own || c.name.startsWith(`${own}/`)) return null;
    return `runs started by a ${kind} (${c.origin}) may not write durable memory (memory.durableWritesFrom.${field} is false); ${own} stays writable`;
  }

  /** Whether `agent` may call `tool` (denied by default; deny wins over allow). */
  toolGranted(agent: string, tool: string): boolean {
    const g = this.grants.get(agent);
    return g !== undefined && grantAllows(g.tools, tool) === 'allow';
  }

  grantedTools(agent: string, catalog: Iterable<string>): string[] {
    return [...catalog].filter((t) => this.toolGranted(agent, t));
  }

  handoffGranted(agent: string, target: string): boolean {
    const h = this.grants.get(agent)?.handoffs;
    if (!h) return true;
    return grantAllows(h, target) === 'allow';
  }

  memoryGrants(agent: string): MemoryGrants {
    return this.grants.get(agent)?.memory ?? NO_MEMORY_GRANTS;
  }

  /** Whether `agent`, in `runId`, may write to `scope` (its write grants, `self` and `run` resolved). */
  memoryWriteGranted(agent: string, runId: string, scope: string): boolean {
    return scopeAllowed(resolveGrants(this.memoryGrants(agent).write, { agent, runId, sessionKey: null }), scope);
  }

  /** True when no rule at all could apply to this crossing: the hot path skips evaluation. */
  isUnruled(c: Crossing): boolean {
    if (this.policy.all.length > 0) return false;
    if (c.kind === 'tool') return this.toolGranted(c.agent, c.name);
    if (c.kind === 'handoff') return this.handoffGranted(c.agent, c.name);
    if (c.kind === 'remember') return this.memoryWriteGranted(c.agent, c.runId, c.name) && this.durableWriteRefusal(c) === null;
    return true;
  }

  /**
   * Evaluates a crossing. With `explain`, the trace also lists every rule that did not
   * apply and why, for `spine policy explain`.
   */
  async evaluate(c: Crossing, now: number, facts: PolicyFacts = NO_FACTS, opts: { explain?: boolean } = {}): Promise<PolicyDecision> {
    const trace: RuleResult[] = [];
    const action = actionString(c.kind, c.name);
    const skip = (rule: { id: string; kind: string; agents: readonly string[] | null }, why: string) => {
      if (opts.explain) trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'skip', reason: why });
    };
    const applies = (rule: { id: string; kind: string; agents: readonly string[] | null; actions?: readonly string[] }): boolean => {
      if (!appliesTo(rule, c.agent)) {
        skip(rule, `not for agent ${c.agent}`);
        return false;
      }
      if (rule.actions && !anyMatch(rule.actions, action)) {
        skip(rule, `does not match ${action}`);
        return false;
      }
      return true;
    };
    const done = (effect: Effect, ruleId: string | null, reason: string, extra: Partial<PolicyDecision> = {}): PolicyDecision => {
      // A rule that decides early leaves the later ones unevaluated: they are listed too, as not reached.
      if (effect !== 'allow') {
        const seen = new Set(trace.map((r) => r.ruleId));
        const { allowlists, approvals, windows, rateLimits, ceilings } = this.policy;
        for (const rule of [...allowlists, ...approvals, ...windows, ...rateLimits, ...ceilings]) {
          if (!seen.has(rule.id)) trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'skip', reason: `not reached: ${ruleId ?? 'an earlier step'} decided first` });
        }
      }
      return { effect, ruleId, reason, notify: [], limits: null, trace, ...extra };
    };

    // 1. grants
    if (c.kind === 'tool') {
      const g = this.grants.get(c.agent);
      const verdict = g ? grantAllows(g.tools, c.name) : 'none';
      const ok = verdict === 'allow';
      const reason = ok ? `granted to ${c.agent}` : verdict === 'deny' ? `${c.agent}'s grants deny ${c.name}` : `${c.agent} holds no grant for ${c.name} (tools are denied by default)`;
      trace.push({ ruleId: 'grants', kind: 'grant', outcome: ok ? 'pass' : 'deny', reason });
      if (!ok) return done('deny', 'grants', reason);
    } else if (c.kind === 'remember') {
      const ok = this.memoryWriteGranted(c.agent, c.runId, c.name);
      const reason = ok ? `${c.agent} may write to ${c.name}` : `${c.agent} holds no memory write grant for ${c.name} (memory writes are denied by default)`;
      trace.push({ ruleId: 'grants', kind: 'grant', outcome: ok ? 'pass' : 'deny', reason });
      if (!ok) return done('deny', 'grants', reason);
      const refusal = this.durableWriteRefusal(c);
      if (refusal) {
        trace.push({ ruleId: DURABLE_WRITES_RULE, kind: 'memory', outcome: 'deny', reason: refusal });
        return done('deny', DURABLE_WRITES_RULE, refusal);
      }
    } else if (c.kind === 'handoff' && !this.handoffGranted(c.agent, c.name)) {
      const reason = `${c.agent}'s grants do not allow handing off to ${c.name}`;
      trace.push({ ruleId: 'grants', kind: 'grant', outcome: 'deny', reason });
      return done('deny', 'grants', reason);
    }

    // 2. allowlists
    for (const rule of this.policy.allowlists) {
      if (!applies(rule)) continue;
      const bad = outsideAllowlist(rule, c.input);
      if (bad.length > 0) {
        const reason = `not on allowlist ${rule.id}: ${bad.join(', ')}`;
        trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'deny', reason });
        return done('deny', rule.id, reason);
      }
      trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'pass', reason: 'every recipient is allowed' });
    }

    // 3. approval tiers
    const notify: string[] = [];
    for (const rule of this.policy.approvals) {
      if (!applies(rule)) continue;
      if (rule.tier === 'deny') {
        const reason = `tier deny for ${action}`;
        trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'deny', reason });
        return done('deny', rule.id, reason);
      }
      if (rule.tier === 'notify') {
        notify.push(rule.id);
        trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'notify', reason: 'proceeds; operators are notified' });
        continue;
      }
      if (rule.tier === 'auto') {
        trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'pass', reason: 'tier auto' });
        continue;
      }
      const recorded = await facts.approvalFor(c.key);
      if (recorded?.state === 'approved') {
        trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'approved', reason: 'a human approved this action' });
        continue;
      }
      if (recorded?.state === 'denied' || recorded?.state === 'expired' || recorded?.state === 'cancelled') {
        const reason = refusalReason(recorded);
        trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'deny', reason });
        return done('deny', rule.id, reason);
      }
      if (await facts.standingGrant(c.agent, action, now)) {
        trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'granted', reason: `standing grant for ${c.agent}` });
        continue;
      }
      const reason = `${action} needs approval by ${rule.approvers}`;
      trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'approve', reason });
      return done('approve', rule.id, reason, {
        notify,
        approval: { ruleId: rule.id, approvers: rule.approvers, expiresInMs: rule.expiresInMs, onExpiry: rule.onExpiry, reason },
      });
    }

    // 4. time windows
    for (const rule of this.policy.windows) {
      if (!applies(rule)) continue;
      if (isOpen(rule.window, now)) {
        trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'pass', reason: 'inside its window' });
        continue;
      }
      const until = nextOpening(rule.window, now);
      const reason = `outside window ${rule.id}; deferred to ${new Date(until).toISOString()}`;
      trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'defer', reason });
      return done('defer', rule.id, reason, { until, notify });
    }

    // 5–6. shared limits, acquired atomically by the store
    const takes: BucketTake[] = [];
    for (const rule of this.policy.rateLimits) {
      if (!applies(rule)) continue;
      takes.push({ ruleId: rule.id, key: bucketKey(rule, action, c.agent), capacity: rule.capacity, refillPerMs: rule.refillPerMs, onExceeded: rule.onExceeded });
      trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'pass', reason: 'takes one token' });
    }
    const budgets: BudgetReserve[] = [];
    // Approving the action (an approval tier) is not approving spend over a ceiling: only an
    // approved escalation of this very action is, and even then its spend is reserved and
    // counted on every budget, just without the ceiling.
    let overCeiling = false;
    if (c.cost && this.policy.ceilings.length > 0 && (await facts.approvalFor(escalationKey(c.key)))?.state === 'approved') {
      overCeiling = true;
      trace.push({ ruleId: 'escalation', kind: 'cost', outcome: 'approved', reason: 'an operator let this action spend over its ceiling' });
    }
    if (!c.cost) for (const rule of this.policy.ceilings) skip(rule, 'this crossing has no spend estimate');
    if (c.cost) {
      for (const rule of this.policy.ceilings) {
        if (!applies(rule)) continue;
        if (rule.origin !== null && rule.origin !== c.origin) {
          skip(rule, `only for runs of ${rule.origin}`);
          continue;
        }
        const key = budgetKey(rule, c, now, this.policy.timezone);
        // A run's ceiling an operator raised (approving an escalation with --raise-to) counts instead, if higher.
        const raised = rule.scope === 'run' && rule.maxMicros !== null ? ((await facts.raisedCeiling?.(key)) ?? null) : null;
        const maxMicros = raised !== null && rule.maxMicros !== null && raised > rule.maxMicros ? raised : rule.maxMicros;
        budgets.push(overCeiling ? { ruleId: rule.id, key, maxMicros: null, maxTokens: null } : { ruleId: rule.id, key, maxMicros, maxTokens: rule.maxTokens });
        const note = overCeiling ? ' (over the ceiling, approved)' : maxMicros !== rule.maxMicros ? ` (ceiling raised to ${formatCost({ micros: maxMicros ?? 0, tokens: 0 }).split(' /')[0]} by an operator)` : '';
        trace.push({ ruleId: rule.id, kind: rule.kind, outcome: 'pass', reason: `reserves ${formatCost(c.cost)}${note}` });
      }
    }
    const limits = takes.length || budgets.length ? { takes, budgets, micros: c.cost?.micros ?? 0, tokens: c.cost?.tokens ?? 0 } : null;
    return done('allow', null, notify.length ? 'allowed; operators notified' : 'allowed', { notify, limits });
  }
}

/** The rule id a refusal by memory.durableWritesFrom carries. */
export const DURABLE_WRITES_RULE = 'memory.durableWritesFrom';

/** Why a decided approval refuses its action, in words the agent gets back: who denied it and their reason. */
function refusalReason(a: ApprovalFact): string {
  if (a.state === 'expired') return 'the approval request expired';
  if (a.state === 'cancelled') return 'the approval request was cancelled';
  const by = a.decidedBy ? ` (${a.decidedBy})` : '';
  return a.reason ? `a human${by} denied this action: ${a.reason}` : `a human${by} denied this action`;
}

/**
 * The action key a cost-ceiling escalation is recorded under: distinct from the action's
 * own key, so approving an approval tier never counts as approving spend over a ceiling.
 */
export function escalationKey(actionKey: string): string {
  return `${actionKey}#ceiling`;
}

function bucketKey(rule: RateLimit, action: string, agent: string): string {
  if (rule.bucket === 'action') return `rate:${rule.id}:${action}`;
  if (rule.bucket === 'agent') return `rate:${rule.id}:${agent}`;
  return `rate:${rule.id}`;
}

export function budgetKey(rule: CostCeiling, c: Pick<Crossing, 'runId' | 'agent' | 'tenant'>, now: number, tz: string): string {
  const day = localTime(now, tz).date;
  switch (rule.scope) {
    case 'run':
      return `cost:${rule.id}:run:${c.runId}`;
    case 'agent':
      return `cost:${rule.id}:agent:${c.agent}:${day}`;
    case 'tenant':
      return `cost:${rule.id}:tenant:${c.tenant}:${day}`;
    case 'global':
      return `cost:${rule.id}:global:${day}`;
  }
}

export function formatCost(c: { micros: number; tokens: number }): string {
  return `$${(c.micros / 1e6).toFixed(4)} / ${c.tokens} tokens`;
}

/** Values in the action's input (at the rule's fields) that no allowlist entry covers. */
function outsideAllowlist(rule: Allowlist, input: Json): string[] {
  const bad: string[] = [];
  for (const field of rule.fields) {
    const value = getPath(input, field);
    const values = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
    for (const v of values) {
      const s = typeof v === 'string' ? v : JSON.stringify(v);
      if (!rule.allow.some((pattern) => allowlistMatch(pattern, s))) bad.push(s);
    }
  }
  return bad;
}

function allowlistMatch(pattern: string, value: string): boolean {
  if (matches(pattern.toLowerCase(), value.toLowerCase())) return true;
  // `acme.com` also admits addresses at that domain.
  const at = value.lastIndexOf('@');
  return at >= 0 && !pattern.includes('@') && matches(pattern.toLowerCase(), value.slice(at + 1).toLowerCase());
}

function getPath(value: Json, path: string): Json | undefined {
  let cur: Json | undefined = value;
  for (const seg of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

export type { ApprovalTier };
