import { z } from 'zod';
import type { Agent } from '../core/agent.ts';
import { CROSSING_KINDS, hasStage, type CrossingKind } from '../core/crossing.ts';
import { digest } from '../core/digest.ts';
import type { FieldIssue } from '../core/issues.ts';
import { GATE_MODES } from '../core/states.ts';
import type { ContractRegistry } from '../contracts/registry.ts';
import { DEFAULT_GATE_SETTINGS, GATE_ON_FAIL, type Gate, type GateSettings } from './gate.ts';
import { DEFAULT_BREAKERS, type BreakerSettings } from './breakers.ts';
import { agentGate, humanGate, ruleGate, schemaGate, type GateScope } from './kinds.ts';
import { compileRule, ruleSchema } from './rules.ts';

/** Crossings with a gates stage (core/crossing.ts). */
export const GATE_CROSSINGS = CROSSING_KINDS.filter((k) => hasStage(k, 'gates')) as [CrossingKind, ...CrossingKind[]];
/** Crossings whose caller applies a fix (the replacement crosses instead). */
const CAN_FIX: readonly CrossingKind[] = ['output', 'toolResult', 'handoffResult', 'tool', 'handoff', 'deliver'];
/** Crossings whose caller can wait for a person (human gates, onFail `escalate`). */
const CAN_WAIT: readonly CrossingKind[] = ['tool', 'handoff', 'deliver'];

const patterns = z.array(z.string().min(1)).min(1);
const common = {
  id: z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]*$/, 'gate ids start with a letter and use letters, digits, _ . or -'),
  description: z.string().optional(),
  on: z.enum(GATE_CROSSINGS),
  /** Acting agents it watches (patterns); every agent when omitted. */
  agents: patterns.optional(),
  /** Tools it watches (tool and toolResult crossings). */
  tools: patterns.optional(),
  onFail: z.enum(GATE_ON_FAIL).optional(),
  maxReasks: z.number().int().nonnegative().max(100).optional(),
  onError: z.enum(['block', 'warn']).optional(),
  mode: z.enum(GATE_MODES).optional(),
  timeoutMs: z.number().int().positive().optional(),
};

export const gateSchema = z.discriminatedUnion(
  'kind',
  [
    z.strictObject({ ...common, kind: z.literal('schema'), contract: z.string().min(1) }),
    z.strictObject({ ...common, kind: z.literal('rule'), rules: z.array(ruleSchema).min(1) }),
    z.strictObject({ ...common, kind: z.literal('agent'), agent: z.string().min(1) }),
    z.strictObject({ ...common, kind: z.literal('human'), approvers: z.string().min(1).optional() }),
  ],
  { error: (issue) => (issue.code === 'invalid_union' ? 'kind must be one of schema, rule, agent, human' : undefined) },
);

export const breakersSchema = z.strictObject({
  failures: z.number().int().positive().optional(),
  windowMs: z.number().int().positive().optional(),
  errorRate: z.number().gt(0).max(1).optional(),
  minCalls: z.number().int().positive().optional(),
  cooldownMs: z.number().int().positive().optional(),
  probeMs: z.number().int().positive().optional(),
  refreshMs: z.number().int().positive().optional(),
});

export const validationSchema = z.strictObject({
  gates: z.array(gateSchema).optional(),
  /** Circuit breakers per agent and tool, shared by every worker; off unless this is set (`{}` takes the defaults). */
  breakers: breakersSchema.optional(),
});

/** The breakers' settings, or null when they are off. */
export function compileBreakers(cfg: ValidationConfig | undefined): BreakerSettings | null {
  if (!cfg?.breakers) return null;
  const b = cfg.breakers;
  return {
    failures: b.failures ?? DEFAULT_BREAKERS.failures,
    windowMs: b.windowMs ?? DEFAULT_BREAKERS.windowMs,
    errorRate: b.errorRate ?? null,
    minCalls: b.minCalls ?? DEFAULT_BREAKERS.minCalls,
    cooldownMs: b.cooldownMs ?? DEFAULT_BREAKERS.cooldownMs,
    probeMs: b.probeMs ?? DEFAULT_BREAKERS.probeMs,
    refreshMs: b.refreshMs ?? DEFAULT_BREAKERS.refreshMs,
  };
}
export type ValidationConfig = z.infer<typeof validationSchema>;
export type GateConfig = z.infer<typeof gateSchema>;

export interface GateCatalog {
  agents: readonly string[];
  tools: readonly string[];
  contracts: ContractRegistry;
  agentOf: (name: string) => Agent | undefined;
}

/** The gates as configured, checked (every name they reference exists, every regex compiles) and built. */
export interface CompiledGates {
  gates: Gate[];
  /** Digest of the `validation` section: every verdict records it. */
  version: string;
}

export function compileGates(cfg: ValidationConfig | undefined, catalog: GateCatalog, issues: FieldIssue[]): CompiledGates {
  const gates: Gate[] = [];
  const seen = new Set<string>();
  (cfg?.gates ?? []).forEach((g, i) => {
    const path = `validation.gates.${i}`;
    const before = issues.length;
    if (seen.has(g.id)) issues.push({ path: `${path}.id`, message: `duplicate gate id ${g.id}` });
    seen.add(g.id);
    (g.agents ?? []).forEach((a, j) => {
      if (!a.includes('*') && !catalog.agents.includes(a)) issues.push({ path: `${path}.agents.${j}`, message: `unknown agent "${a}"` });
    });
    if (g.tools && g.on !== 'tool' && g.on !== 'toolResult') issues.push({ path: `${path}.tools`, message: `tools filter only tool and toolResult gates (this one is on ${g.on})` });
    (g.tools ?? []).forEach((t, j) => {
      if (!t.includes('*') && !catalog.tools.includes(t)) issues.push({ path: `${path}.tools.${j}`, message: `unknown tool "${t}"` });
    });
    const onFail = g.onFail ?? (g.kind === 'human' ? 'escalate' : 'block');
    if ((g.kind === 'human' || onFail === 'escalate') && !CAN_WAIT.includes(g.on)) {
      issues.push({ path: `${path}.${g.kind === 'human' ? 'kind' : 'onFail'}`, message: `waiting for a person is supported on ${CAN_WAIT.join(', ')} crossings (this gate is on ${g.on})` });
    }
    if (g.kind === 'human' && g.onFail !== undefined && g.onFail !== 'escalate') issues.push({ path: `${path}.onFail`, message: 'a human gate always escalates' });
    if (onFail === 'fix' && g.kind !== 'agent') issues.push({ path: `${path}.onFail`, message: `only agent gates offer fixes (this one is a ${g.kind} gate)` });
    else if (onFail === 'fix' && !CAN_FIX.includes(g.on)) issues.push({ path: `${path}.onFail`, message: `fixes are applied on ${CAN_FIX.join(', ')} crossings (this gate is on ${g.on})` });
    if (g.maxReasks !== undefined && onFail !== 'reask') issues.push({ path: `${path}.maxReasks`, message: 'only meaningful with onFail "reask"' });
    const settings: GateSettings = {
      onFail,
      maxReasks: g.maxReasks ?? DEFAULT_GATE_SETTINGS.maxReasks,
      onError: g.onError ?? 'block',
      mode: g.mode ?? 'enforce',
      timeoutMs: g.timeoutMs ?? DEFAULT_GATE_SETTINGS.timeoutMs,
      approvers: g.kind === 'human' ? (g.approvers ?? 'operators') : 'operators',
    };
    const scope: GateScope = { id: g.id, on: g.on, agents: g.agents ?? null, tools: g.tools ?? null, settings };
    let gate: Gate | null = null;
    switch (g.kind) {
      case 'schema':
        if (!catalog.contracts.has(g.contract)) issues.push({ path: `${path}.contract`, message: `unknown contract ${g.contract}` });
        else gate = schemaGate(scope, catalog.contracts, g.contract);
        break;
      case 'rule': {
        const rules = g.rules.map((r, j) => compileRule(r, `${path}.rules.${j}`, issues));
        gate = ruleGate(scope, rules);
        break;
      }
      case 'agent':
        if (!catalog.agents.includes(g.agent)) issues.push({ path: `${path}.agent`, message: `unknown agent "${g.agent}"` });
        else gate = agentGate(scope, g.agent, catalog.agentOf);
        break;
      case 'human':
        gate = humanGate(scope);
        break;
    }
    if (gate && issues.length === before) gates.push(gate);
  });
  return { gates, version: digest(cfg ?? null).slice(0, 12) };
}
