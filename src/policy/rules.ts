import { z } from 'zod';
import type { FieldIssue } from '../core/errors.ts';
import { parseDuration } from './duration.ts';
import { qualifyAction } from '../core/patterns.ts';
import { DAYS, isValidTimezone } from '../core/zoned-time.ts';
import { parseClock, type TimeWindow } from './windows.ts';

/**
 * Policy rules as written in `spine.config.json5` (`policy.rules`) and their
 * compiled form. Rules are evaluated in a fixed order by kind — see evaluate.ts and
 * docs/policy.md — never in file order, so adding a rule cannot reorder others.
 */

const id = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]*$/, 'rule ids start with a letter and use letters, digits, _ . or -');
const patterns = z.array(z.string().min(1)).min(1);
const duration = z.union([z.number().int().positive(), z.string()]);

const common = {
  id,
  description: z.string().optional(),
  /** Agents the rule applies to (patterns); all when omitted. */
  agents: patterns.optional(),
  /** Accept patterns that match no known tool, agent or channel (for ones that come later); refused otherwise. */
  allowUnmatched: z.boolean().optional(),
};

const costRule = z.strictObject({
  ...common,
  kind: z.literal('cost'),
  /** What the ceiling counts: one run's spend, an agent's daily spend, a tenant's daily spend, or everything's. */
  scope: z.enum(['run', 'agent', 'tenant', 'global']),
  maxUsd: z.number().nonnegative().optional(),
  maxTokens: z.number().int().nonnegative().optional(),
});

const expiry = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('deny') }),
  z.strictObject({ action: z.literal('notify') }),
  z.strictObject({ action: z.literal('reroute'), approvers: z.string().min(1), expiresIn: duration.optional() }),
]);

const approvalRule = z.strictObject({
  ...common,
  kind: z.literal('approval'),
  /** Action patterns: `tool:email.*`, `handoff:finance`, `deliver:slack:*`. */
  actions: patterns,
  tier: z.enum(['auto', 'notify', 'approve', 'deny']),
  approvers: z.string().min(1).optional(),
  expiresIn: duration.optional(),
  onExpiry: expiry.optional(),
});

const rateRule = z.strictObject({
  ...common,
  kind: z.literal('rateLimit'),
  actions: patterns,
  /** Bucket size: the burst allowed. */
  capacity: z.number().int().positive(),
  /** Tokens added per second. */
  refillPerSecond: z.number().positive(),
  /** One bucket per action pattern match (`action`), per agent (`agent`), or one for the rule (`rule`). */
  bucket: z.enum(['rule', 'action', 'agent']).optional(),
  onExceeded: z.enum(['wait', 'fail']),
});

const allowlistRule = z.strictObject({
  ...common,
  kind: z.literal('allowlist'),
  actions: patterns,
  /** Dotted path(s) in the action's input holding the recipient(s): a string or an array of strings. */
  fields: z.array(z.string().min(1)).min(1),
  /** Allowed values: exact (`ops@acme.com`), domains (`*@acme.com`, `*.acme.com`), channels (`slack:C123`). */
  allow: z.array(z.string().min(1)),
});

const windowSpec = z.strictObject({
  from: z.string(),
  to: z.string(),
  days: z.array(z.enum(DAYS)).min(1).optional(),
});

const windowRule = z.strictObject({
  ...common,
  kind: z.literal('timeWindow'),
  actions: patterns,
  timezone: z.string(),
  /** Actions may run only inside this window … */
  allow: windowSpec.optional(),
  /** … or never inside this one (quiet hours). */
  deny: windowSpec.optional(),
});

export const ruleSchema = z.discriminatedUnion('kind', [costRule, approvalRule, rateRule, allowlistRule, windowRule], {
  error: (issue) => (issue.code === 'invalid_union' ? 'kind must be one of cost, approval, rateLimit, allowlist, timeWindow' : undefined),
});

export const policySchema = z.strictObject({
  /** Timezone in which daily ceilings roll over (default UTC). */
  timezone: z.string().optional(),
  rules: z.array(ruleSchema).optional(),
});

export type PolicyConfig = z.infer<typeof policySchema>;
type RuleConfig = z.infer<typeof ruleSchema>;

// ── compiled form ─────────────────────────────────────────────────────────────

interface CompiledBase {
  id: string;
  agents: readonly string[] | null;
}

export interface CostCeiling extends CompiledBase {
  kind: 'cost';
  scope: 'run' | 'agent' | 'tenant' | 'global';
  maxMicros: number | null;
  maxTokens: number | null;
  /** Only runs of this origin (`heartbeat:<id>`: a heartbeat's maxCostUsd); null: every run. */
  origin: string | null;
  /** Reaching it escalates to a human (rules), or fails the task (a heartbeat: nobody is paged for it). */
  onExceeded: 'escalate' | 'fail';
}

export interface ApprovalTier extends CompiledBase {
  kind: 'approval';
  actions: readonly string[];
  tier: 'auto' | 'notify' | 'approve' | 'deny';
  approvers: string;
  expiresInMs: number;
  onExpiry: { action: 'deny' } | { action: 'notify' } | { action: 'reroute'; approvers: string; expiresInMs: number };
}

export interface RateLimit extends CompiledBase {
  kind: 'rateLimit';
  actions: readonly string[];
  capacity: number;
  refillPerMs: number;
  bucket: 'rule' | 'action' | 'agent';
  onExceeded: 'wait' | 'fail';
}

export interface Allowlist extends CompiledBase {
  kind: 'allowlist';
  actions: readonly string[];
  fields: readonly string[];
  allow: readonly string[];
}

export interface WindowRule extends CompiledBase {
  kind: 'timeWindow';
  actions: readonly string[];
  window: TimeWindow;
}

export type CompiledRule = CostCeiling | ApprovalTier | RateLimit | Allowlist | WindowRule;

export interface CompiledPolicy {
  timezone: string;
  ceilings: readonly CostCeiling[];
  approvals: readonly ApprovalTier[];
  rateLimits: readonly RateLimit[];
  allowlists: readonly Allowlist[];
  windows: readonly WindowRule[];
  /** Every rule in its evaluation order. */
  all: readonly CompiledRule[];
}

export const EMPTY_POLICY: CompiledPolicy = { timezone: 'UTC', ceilings: [], approvals: [], rateLimits: [], allowlists: [], windows: [], all: [] };

const DEFAULT_APPROVAL_EXPIRY_MS = 24 * 3_600_000;

/** Checks what the schema cannot (timezones, clocks, durations, unique ids) and compiles. */
export function compilePolicy(cfg: PolicyConfig | undefined, issues: FieldIssue[]): CompiledPolicy {
  if (!cfg) return EMPTY_POLICY;
  const timezone = cfg.timezone ?? 'UTC';
  if (!isValidTimezone(timezone)) issues.push({ path: 'policy.timezone', message: `unknown IANA timezone "${timezone}"` });
  const out = { ceilings: [] as CostCeiling[], approvals: [] as ApprovalTier[], rateLimits: [] as RateLimit[], allowlists: [] as Allowlist[], windows: [] as WindowRule[] };
  const seen = new Set<string>();
  (cfg.rules ?? []).forEach((rule, i) => {
    const path = `policy.rules.${i}`;
    if (seen.has(rule.id)) issues.push({ path: `${path}.id`, message: `duplicate rule id "${rule.id}"` });
    seen.add(rule.id);
    const compiled = compileRule(rule, path, issues);
    if (compiled) (out[bucketOf(compiled)] as CompiledRule[]).push(compiled);
  });
  return { timezone, ...out, all: evaluationOrder(out) };
}

/** Every rule, in the order evaluation meets them: allowlists, approvals, windows, rate limits, ceilings. */
function evaluationOrder(b: Omit<CompiledPolicy, 'timezone' | 'all'>): CompiledRule[] {
  return [...b.allowlists, ...b.approvals, ...b.windows, ...b.rateLimits, ...b.ceilings];
}

/**
 * A heartbeat's `maxCostUsd` as a per-run ceiling on its own runs (id `heartbeat:<schedule>`,
 * which no configured rule id can be), counted like every other ceiling.
 */
export function heartbeatCeiling(schedule: string, maxUsd: number): CostCeiling {
  return { id: `heartbeat:${schedule}`, kind: 'cost', agents: null, scope: 'run', maxMicros: Math.round(maxUsd * 1e6), maxTokens: null, origin: `heartbeat:${schedule}`, onExceeded: 'fail' };
}

/** The policy with more ceilings, kept in evaluation order. */
export function withCeilings(policy: CompiledPolicy, extra: readonly CostCeiling[]): CompiledPolicy {
  if (extra.length === 0) return policy;
  const withExtra = { ...policy, ceilings: [...policy.ceilings, ...extra] };
  return { ...withExtra, all: evaluationOrder(withExtra) };
}

function bucketOf(rule: CompiledRule): 'ceilings' | 'approvals' | 'rateLimits' | 'allowlists' | 'windows' {
  switch (rule.kind) {
    case 'cost':
      return 'ceilings';
    case 'approval':
      return 'approvals';
    case 'rateLimit':
      return 'rateLimits';
    case 'allowlist':
      return 'allowlists';
    case 'timeWindow':
      return 'windows';
  }
}

function compileRule(rule: RuleConfig, path: string, issues: FieldIssue[]): CompiledRule | null {
  const base = { id: rule.id, agents: rule.agents ?? null };
  const ms = (value: string | number | undefined, field: string, fallback: number): number => {
    if (value === undefined) return fallback;
    const parsed = parseDuration(value);
    if (parsed === null) issues.push({ path: `${path}.${field}`, message: `not a duration: ${JSON.stringify(value)} (e.g. 30m, 4h, 7d, or milliseconds)` });
    return parsed ?? fallback;
  };
  switch (rule.kind) {
    case 'cost':
      if (rule.maxUsd === undefined && rule.maxTokens === undefined) {
        issues.push({ path: `${path}.maxUsd`, message: 'a cost ceiling needs maxUsd, maxTokens or both' });
      }
      return {
        ...base,
        kind: 'cost',
        scope: rule.scope,
        maxMicros: rule.maxUsd === undefined ? null : Math.round(rule.maxUsd * 1e6),
        maxTokens: rule.maxTokens ?? null,
        origin: null,
        onExceeded: 'escalate',
      };
    case 'approval': {
      const expiresInMs = ms(rule.expiresIn, 'expiresIn', DEFAULT_APPROVAL_EXPIRY_MS);
      const e = rule.onExpiry ?? { action: 'deny' as const };
      const onExpiry =
        e.action === 'reroute' ? { action: 'reroute' as const, approvers: e.approvers, expiresInMs: ms(e.expiresIn, 'onExpiry.expiresIn', expiresInMs) } : e;
      return { ...base, kind: 'approval', actions: rule.actions.map(qualifyAction), tier: rule.tier, approvers: rule.approvers ?? 'operators', expiresInMs, onExpiry };
    }
    case 'rateLimit':
      return {
        ...base,
        kind: 'rateLimit',
        actions: rule.actions.map(qualifyAction),
        capacity: rule.capacity,
        refillPerMs: rule.refillPerSecond / 1000,
        bucket: rule.bucket ?? 'rule',
        onExceeded: rule.onExceeded,
      };
    case 'allowlist':
      return { ...base, kind: 'allowlist', actions: rule.actions.map(qualifyAction), fields: rule.fields, allow: rule.allow };
    case 'timeWindow': {
      if (!isValidTimezone(rule.timezone)) issues.push({ path: `${path}.timezone`, message: `unknown IANA timezone "${rule.timezone}"` });
      const spec = rule.allow ?? rule.deny;
      if (!spec || (rule.allow && rule.deny)) {
        issues.push({ path: `${path}.allow`, message: 'a time window needs exactly one of allow or deny' });
        return null;
      }
      const mode = rule.allow ? 'allow' : 'deny';
      const from = parseClock(spec.from);
      const to = parseClock(spec.to);
      if (from === null) issues.push({ path: `${path}.${mode}.from`, message: `not a time of day HH:MM: "${spec.from}"` });
      if (to === null) issues.push({ path: `${path}.${mode}.to`, message: `not a time of day HH:MM: "${spec.to}"` });
      if (from !== null && from === to) issues.push({ path: `${path}.${mode}.to`, message: 'the window is empty (from equals to)' });
      if (from === null || to === null) return null;
      return {
        ...base,
        kind: 'timeWindow',
        actions: rule.actions.map(qualifyAction),
        window: { mode, timezone: rule.timezone, from, to, days: (spec.days) ?? null },
      };
    }
  }
}
