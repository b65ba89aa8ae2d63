import { STRATEGIES, type Comparator, type Strategy } from '../core/brief.ts';
import type { FieldIssue } from '../core/issues.ts';
import type { Json } from '../core/types.ts';
import { matches } from '../core/patterns.ts';
import type { ResolveRule } from './resolve.ts';
import type { SynthesisConfig } from './schema.ts';

/** An agent's compiled synthesis settings (docs/synthesis.md). */
export interface SynthesisSpec {
  compare: Array<{ match: string; comparator: Comparator }>;
  expect: string[];
  rules: ResolveRule[];
  /** Where each finished brief is delivered, if anywhere. */
  deliver: { channel: string; account: string; to: string; thread?: string } | null;
}

export function comparatorFor(spec: SynthesisSpec, key: string): Comparator {
  return spec.compare.find((c) => matches(c.match, key))?.comparator ?? { kind: 'equal' };
}

/**
 * Compiles an agent's `synthesis` block. A strategy Spine does not know, or an agent
 * the config does not define (a judge, a priority order), is an issue naming its field.
 */
export function compileSynthesis(raw: SynthesisConfig, agentNames: readonly string[], path: string, issues: FieldIssue[]): SynthesisSpec {
  const compare = Object.entries(raw.compare ?? {}).map(([match, c]) => ({ match, comparator: toComparator(c) }));
  const knownAgent = (name: string, at: string) => {
    if (!agentNames.includes(name)) issues.push({ path: at, message: `unknown agent "${name}"` });
  };
  if (raw.judge !== undefined) knownAgent(raw.judge, `${path}.judge`);
  const rules: ResolveRule[] = [];
  (raw.resolve ?? []).forEach((rule, i) => {
    const at = `${path}.resolve.${i}`;
    if ((rule.strategy === undefined) === (rule.chain === undefined)) {
      issues.push({ path: at, message: 'give either "strategy" (one) or "chain" (several, in order)' });
      return;
    }
    // In a chain, an entry's settings sit under its index; a single strategy's beside `strategy` in the rule.
    const refs: Array<{ ref: string | Record<string, unknown>; at: string; nameAt: string }> =
      rule.chain !== undefined
        ? rule.chain.map((ref, j) => ({ ref, at: `${at}.chain.${j}`, nameAt: `${at}.chain.${j}` }))
        : [{ ref: { ...rule, strategy: rule.strategy! }, at, nameAt: `${at}.strategy` }];
    const chain: Strategy[] = [];
    for (const { ref, at: where, nameAt } of refs) {
      const s = toStrategy(ref, raw, where, nameAt, issues, knownAgent);
      if (s) chain.push(s);
    }
    rules.push({ match: rule.match, chain });
  });
  const deliver = raw.deliver ? { channel: raw.deliver.channel, account: raw.deliver.account ?? 'default', to: raw.deliver.to, ...(raw.deliver.thread ? { thread: raw.deliver.thread } : {}) } : null;
  return { compare, expect: raw.expect ?? [], rules, deliver };
}

function toComparator(c: NonNullable<SynthesisConfig['compare']>[string]): Comparator {
  if (c === 'equal' || c === 'set') return { kind: c };
  if ('numeric' in c) return { kind: 'numeric', tolerance: c.numeric.tolerance };
  return { kind: 'enum', values: c.enum as Json[] };
}

function toStrategy(
  ref: string | Record<string, unknown>,
  raw: SynthesisConfig,
  at: string,
  nameAt: string,
  issues: FieldIssue[],
  knownAgent: (name: string, at: string) => void,
): Strategy | null {
  const o: Record<string, unknown> = typeof ref === 'string' ? { strategy: ref } : ref;
  const name = o.strategy as string;
  if (!(STRATEGIES as readonly string[]).includes(name)) {
    issues.push({ path: nameAt, message: `unknown strategy "${name}" (known: ${STRATEGIES.join(', ')})` });
    return null;
  }
  switch (name) {
    case 'priority': {
      const order = o.order;
      if (!Array.isArray(order) || order.length === 0 || !order.every((a) => typeof a === 'string')) {
        issues.push({ path: at, message: 'priority needs "order": the agents, highest first' });
        return null;
      }
      order.forEach((a: string) => knownAgent(a, `${at}.order`));
      return { strategy: 'priority', order };
    }
    case 'confidence':
      return { strategy: 'confidence', min: typeof o.min === 'number' ? o.min : 0 };
    case 'judge': {
      const agent = typeof o.agent === 'string' ? o.agent : raw.judge;
      if (agent === undefined) {
        issues.push({ path: at, message: 'judge needs an agent: "agent" here or "judge" in the synthesis block' });
        return null;
      }
      if (typeof o.agent === 'string') knownAgent(agent, `${at}.agent`);
      return { strategy: 'judge', agent };
    }
    case 'human':
      return {
        strategy: 'human',
        approvers: typeof o.approvers === 'string' ? o.approvers : (raw.human?.approvers ?? 'operators'),
        expiresInMs: typeof o.expiresInMs === 'number' ? o.expiresInMs : (raw.human?.expiresInMs ?? null),
      };
    case 'vote':
      return { strategy: 'vote' };
    default:
      return { strategy: 'keep-both' };
  }
}
