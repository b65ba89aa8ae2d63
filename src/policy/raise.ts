import { InvalidInputError, NotFoundError } from '../core/errors.ts';
import type { CeilingRaise, Store } from '../store/store.ts';
import { budgetKey } from './evaluate.ts';
import type { CompiledPolicy } from './rules.ts';

/**
 * Approving an escalation with a higher ceiling (`--raise-to` on the CLI, `raiseTo` on
 * HTTP and MCP): the escalation's rule must be a per-run cost ceiling of this policy and
 * the new amount above it; the raise is then this run's budget key and amount, committed
 * with the decision. `field` names the input in errors, as the caller's door spells it.
 */
export async function ceilingRaise(store: Store, policy: CompiledPolicy | null, id: string, usd: number, field: string, now: number): Promise<CeilingRaise> {
  if (!(Number.isFinite(usd) && usd > 0)) throw new InvalidInputError(field, `must be an amount in USD greater than 0, got "${usd}"`);
  const a = await store.approvals.get(id);
  if (!a) throw new NotFoundError('approval', id);
  if (a.kind !== 'escalation') throw new InvalidInputError(field, `approval ${id} is an approval tier, not an escalation: there is no ceiling to raise`);
  if (!policy) throw new InvalidInputError(field, 'needs the config (--config) to find the ceiling rule');
  const rule = policy.ceilings.find((c) => c.id === a.ruleId);
  if (!rule) throw new InvalidInputError(field, `the escalation was raised by "${a.ruleId ?? '?'}", which is not a cost ceiling of this config`);
  if (rule.scope !== 'run' || rule.maxMicros === null) throw new InvalidInputError(field, `only a run's spend ceiling can be raised; ${rule.id} is ${rule.scope === 'run' ? 'a token ceiling' : `per ${rule.scope}`}`);
  const maxMicros = Math.round(usd * 1e6);
  if (maxMicros <= rule.maxMicros) throw new InvalidInputError(field, `must be above ${rule.id}'s ceiling of $${rule.maxMicros / 1e6}, got $${usd}`);
  return { budgetKey: budgetKey(rule, { runId: a.runId, agent: a.agent, tenant: 'default' }, now, policy.timezone), ruleId: rule.id, maxMicros };
}
