import type { Agent } from '../core/agent.ts';
import { anyMatch } from '../core/patterns.ts';
import type { Json, TurnInput } from '../core/types.ts';
import type { ContractRegistry } from '../contracts/registry.ts';
import type { Gate, GateSettings, GateSubject, GateVerdict } from './gate.ts';
import type { CompiledRule } from './rules.ts';
import type { CrossingKind } from '../core/crossing.ts';

/**
 * The four gate kinds. Each is a Gate the boundary runs in its gates stage; none
 * writes anything (the boundary records the verdict with the crossing's audit).
 */

export interface GateScope {
  id: string;
  on: CrossingKind;
  /** Agent patterns the gate watches (null: every agent). */
  agents: readonly string[] | null;
  /** Tool patterns (tool and toolResult crossings; null: every tool). */
  tools: readonly string[] | null;
  settings: GateSettings;
}

function applies(scope: GateScope): (s: GateSubject) => boolean {
  const { agents, tools } = scope;
  if (!agents && !tools) return () => true;
  return (s) => (!agents || anyMatch(agents, s.agent)) && (!tools || anyMatch(tools, s.name));
}

function base(scope: GateScope, kind: string): Omit<Gate, 'check'> {
  return { id: scope.id, on: scope.on, kind, settings: scope.settings, applies: applies(scope) };
}

/** `schema`: the value must satisfy a contract. */
export function schemaGate(scope: GateScope, contracts: ContractRegistry, contract: string): Gate {
  return {
    ...base(scope, 'schema'),
    check: async (s) => {
      const v = contracts.violations(contract, s.value);
      return v.length ? { verdict: 'fail', reasons: v.map((i) => `${i.path || '(root)'}: ${i.message}`) } : { verdict: 'pass' };
    },
  };
}

/** `rule`: deterministic predicates; every reason of every rule is listed. */
export function ruleGate(scope: GateScope, rules: readonly CompiledRule[], warnOnly = false): Gate {
  return {
    ...base(scope, 'rule'),
    check: async (s) => {
      const reasons = rules.length === 1 ? rules[0]!(s.value) : rules.flatMap((r) => r(s.value));
      if (reasons.length === 0) return { verdict: 'pass' };
      return warnOnly ? { verdict: 'warn', reasons } : { verdict: 'fail', reasons };
    },
  };
}

/** `human`: every crossing it watches waits for a person's decision (an approval). */
export function humanGate(scope: GateScope): Gate {
  return { ...base(scope, 'human'), check: async () => ({ verdict: 'fail', reasons: [`needs a decision by ${scope.settings.approvers}`] }) };
}

/**
 * `agent`: a validator agent (of any kind) is given one turn with the subject as its
 * task input and must answer the output `{verdict: 'pass' | 'warn' | 'fail', reasons, fix?}`.
 * Anything else — a throw, a crash, a timeout, a malformed answer — is an error,
 * which blocks unless the gate says `onError: 'warn'`.
 */
export function agentGate(scope: GateScope, validator: string, agentOf: (name: string) => Agent | undefined): Gate {
  return {
    ...base(scope, 'agent'),
    check: async (s, signal) => {
      const agent = agentOf(validator);
      if (!agent) throw new Error(`validator agent ${validator} is not configured`);
      const input: TurnInput = {
        protocol: 'spine.turn/1',
        task: {
          id: `gate:${scope.id}:${s.key}`,
          runId: s.runId ?? '',
          agent: validator,
          parentId: s.taskId,
          depth: 0,
          input: { gate: scope.id, crossing: s.crossing, name: s.name, agent: s.agent, value: s.value },
          turn: 1,
          attempt: 1,
          lastError: null,
        },
        session: null,
        history: [],
        results: [],
        memory: [],
        grants: { tools: [], agents: [] },
      };
      const raw = await agent.turn(structuredClone(input), { signal: signal ?? new AbortController().signal, timeoutMs: scope.settings.timeoutMs });
      return validatorVerdict(validator, raw);
    },
  };
}

/** The validator contract: `{output: {verdict, reasons?, fix?}}`. */
export function validatorVerdict(validator: string, raw: unknown): GateVerdict {
  const out = raw && typeof raw === 'object' && 'output' in raw ? (raw).output : undefined;
  if (!out || typeof out !== 'object' || Array.isArray(out)) throw new Error(`validator ${validator} answered no output {verdict, reasons, fix?}`);
  const o = out as { verdict?: unknown; reasons?: unknown; fix?: unknown };
  const reasons = Array.isArray(o.reasons) ? o.reasons.map(String) : typeof o.reasons === 'string' ? [o.reasons] : [];
  switch (o.verdict) {
    case 'pass':
      return { verdict: 'pass' };
    case 'warn':
      return { verdict: 'warn', reasons };
    case 'fail':
      return { verdict: 'fail', reasons: reasons.length ? reasons : [`${validator} failed it`], ...(o.fix === undefined ? {} : { fix: o.fix as Json }) };
    default:
      throw new Error(`validator ${validator} answered verdict ${JSON.stringify(o.verdict)}; expected pass, warn or fail`);
  }
}
