import { InvalidInputError } from '../../core/errors.ts';
import type { Json } from '../../core/types.ts';
import { ManualClock } from '../../core/clock.ts';
import { Boundary } from '../../engine/boundary.ts';
import { formatCost } from '../../policy/evaluate.ts';
import { parse } from '../args.ts';
import { loadCliConfig, openCliStore } from '../context.ts';
import { table } from '../format.ts';
import { uncataloguedHint, withMcpCatalog } from '../../runtime/mcp-catalog.ts';
import type { CommandResult } from '../command.ts';

export async function policyCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  if (sub !== 'explain') throw new InvalidInputError('policy', sub ? `unknown subcommand "${sub}" (explain)` : 'needs a subcommand: explain');
  const { values } = parse(
    rest,
    { agent: { type: 'string' }, action: { type: 'string' }, args: { type: 'string' }, run: { type: 'string' }, tenant: { type: 'string' }, at: { type: 'string' } },
    0,
  );
  if (!values.agent) throw new InvalidInputError('--agent', 'missing');
  if (!values.action) throw new InvalidInputError('--action', 'missing, e.g. --action tool:email.send');
  const m = /^(tool|handoff|turn):(.+)$/.exec(values.action);
  if (!m) throw new InvalidInputError('--action', `must be tool:<name>, handoff:<agent> or turn:<agent>, got "${values.action}"`);
  const kind = m[1] as 'tool' | 'handoff' | 'turn';
  const name = m[2]!;
  let args: Json = null;
  if (values.args !== undefined) {
    try {
      args = JSON.parse(values.args) as Json;
    } catch (err) {
      throw new InvalidInputError('--args', `not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const now = values.at === undefined ? Date.now() : Date.parse(values.at);
  if (Number.isNaN(now)) throw new InvalidInputError('--at', `not a date: "${values.at}"`);

  const config = await loadCliConfig(values);
  const agent = config.registry.agents.get(values.agent);
  if (!agent) throw new InvalidInputError('--agent', `unknown agent "${values.agent}" (known: ${[...config.registry.agents.keys()].join(', ')})`);

  const store = await openCliStore(values, config);
  try {
    // MCP servers' tools come from the catalog in the store: this command does not connect to them.
    const catalog = await withMcpCatalog(config, store);
    const { registry } = catalog;
    if (kind === 'tool' && !registry.tools.has(name)) {
      throw new InvalidInputError('--action', `unknown tool "${name}" (known: ${[...registry.tools.keys()].join(', ') || 'none'})${uncataloguedHint(catalog, name)}`);
    }
    if (kind === 'handoff' && !registry.agents.has(name)) throw new InvalidInputError('--action', `unknown agent "${name}"`);

    // The boundary itself, in explain mode: the same stages a live crossing passes, with nothing acquired or written.
    const boundary = new Boundary(store, registry, new ManualClock(now));
    const ctx = { agent: agent.name, runId: values.run ?? '(explain)', taskId: '(explain)', tenant: values.tenant ?? 'default', actor: 'explain', key: '(explain)' };
    const explained = await boundary.explain(kind, ctx, name, args);
    const { decision } = explained;
    const steps: Array<{ ruleId: string; kind: string; outcome: string; reason: string }> = [];
    for (const step of explained.steps) {
      if (step.stage === 'contract' && step.contract) {
        const v = step.violations ?? [];
        const ok = kind === 'handoff' ? 'payload satisfies the receiver’s contract' : 'input satisfies the contract';
        steps.push({ ruleId: step.contract, kind: 'contract', outcome: step.outcome, reason: v.length ? v.map((i) => `${i.path || '(root)'} ${i.message}`).join('; ') : ok });
      } else if (step.stage === 'policy') {
        steps.push(...(step.rules ?? []));
      }
    }
    const contractDenied = steps.some((s) => s.kind === 'contract' && s.outcome === 'deny');
    let effect: string = contractDenied ? 'deny' : decision.effect;
    let reason = contractDenied ? 'the input violates its contract' : decision.reason;
    let ruleId: string | null = contractDenied ? (steps.find((s) => s.kind === 'contract' && s.outcome === 'deny')?.ruleId ?? null) : decision.ruleId;
    // Report what the shared limits would say, without taking anything.
    const usage = decision.limits ? await store.limits.usage(decision.limits.budgets.map((b) => b.key)) : [];
    for (const b of decision.limits?.budgets ?? []) {
      const u = usage.find((x) => x.key === b.key);
      const spent = (u?.spentMicros ?? 0) + (u?.reservedMicros ?? 0);
      const tokens = (u?.spentTokens ?? 0) + (u?.reservedTokens ?? 0);
      const over = (b.maxMicros !== null && spent + decision.limits!.micros > b.maxMicros) || (b.maxTokens !== null && tokens + decision.limits!.tokens > b.maxTokens);
      steps.push({
        ruleId: b.ruleId,
        kind: 'budget',
        outcome: over ? 'escalate' : 'pass',
        reason: `${b.key}: used ${formatCost({ micros: spent, tokens })} of ${b.maxMicros === null ? '∞' : `$${(b.maxMicros / 1e6).toFixed(2)}`} / ${b.maxTokens ?? '∞'} tokens`,
      });
      if (over && effect === 'allow') {
        effect = 'escalate';
        reason = `cost ceiling ${b.ruleId} would be exceeded`;
        ruleId = b.ruleId;
      }
    }
    const result = { agent: agent.name, action: values.action, at: new Date(now).toISOString(), effect, ruleId, reason, rules: steps };
    if (values.json) return { stdout: JSON.stringify(result, null, 2) };
    return {
      stdout: [
        `${values.action} by ${agent.name} at ${result.at}`,
        '',
        table(['RULE', 'KIND', 'OUTCOME', 'WHY'], steps.map((s) => [s.ruleId, s.kind, s.outcome, s.reason])),
        '',
        `decision: ${effect.toUpperCase()}${result.ruleId ? ` (rule ${result.ruleId})` : ''} — ${reason}`,
        '(nothing was executed, reserved or requested)',
      ].join('\n'),
    };
  } finally {
    await store.close();
  }
}
