import { APPROVAL_STATES } from '../../core/states.ts';
import { InvalidInputError, NotFoundError } from '../../core/errors.ts';
import { ceilingRaise } from '../../policy/raise.ts';
import { parseDuration } from '../../policy/duration.ts';
import { intOption, oneOf, parse } from '../args.ts';
import { maybeConfig, openCliStore } from '../context.ts';
import { short, table, when } from '../format.ts';
import type { CommandResult } from '../command.ts';

const STATES = [...APPROVAL_STATES, 'all'] as const;

function operator(as: string | undefined): string {
  return as ?? process.env.SPINE_OPERATOR ?? process.env.USER ?? 'operator';
}

export async function approvalsCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'list':
      return list(rest);
    case 'show':
      return show(rest);
    case 'approve':
    case 'deny':
      return decide(rest, sub === 'approve');
    case 'grant':
      return grant(rest);
    case 'grants':
      return grants(rest);
    case 'revoke':
      return revoke(rest);
    default:
      throw new InvalidInputError(
        'approvals',
        sub ? `unknown subcommand "${sub}" (list, show, approve, deny, grant, grants, revoke)` : 'needs a subcommand: list, show, approve, deny, grant, grants or revoke',
      );
  }
}

async function list(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { state: { type: 'string' }, run: { type: 'string' }, limit: { type: 'string' }, quiet: { type: 'boolean', short: 'q' } }, 0);
  const state = oneOf('state', values.state, STATES) ?? 'pending';
  const limit = intOption('limit', values.limit) ?? 50;
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const approvals = await store.approvals.list({ limit, ...(state === 'all' ? {} : { state: state }), ...(values.run ? { runId: values.run } : {}) });
    if (values.json) return { stdout: JSON.stringify({ approvals }, null, 2) };
    // -q: the ids alone, one a line, for scripts (`spine approvals approve $(spine approvals list -q)`).
    if (values.quiet) return { stdout: approvals.map((a) => a.id).join('\n') };
    if (approvals.length === 0) return { stdout: `no ${state === 'all' ? '' : state + ' '}approvals` };
    return {
      stdout: table(
        ['APPROVAL', 'KIND', 'STATE', 'AGENT', 'ACTION', 'RULE', 'APPROVERS', 'EXPIRES', 'WHY'],
        approvals.map((a) => {
          const action = a.action as { kind?: string; name?: string } | null;
          return [
            a.id,
            a.kind,
            a.state === 'pending' ? a.state : `${a.state} by ${a.decidedBy ?? '?'}`,
            a.agent,
            `${action?.kind ?? '?'}:${action?.name ?? '?'}`,
            a.ruleId ?? '-',
            a.approvers,
            when(a.expiresAt),
            short(a.reason, 60),
          ];
        }),
      ),
    };
  } finally {
    await store.close();
  }
}

/** One approval in full: the action with its whole input, the rule, who may decide, and its history. */
async function show(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(argv, {}, 1);
  const id = positionals[0];
  if (!id) throw new InvalidInputError('<approval-id>', 'missing (see `spine approvals list`)');
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const a = await store.approvals.get(id);
    if (!a) throw new NotFoundError('approval', id);
    // Its history: the audit events that name it (requested, decided, expired, rerouted, cancelled).
    const history = (await store.audit.list({ runId: a.runId, limit: 10_000 })).filter((e) => (e.data as { approval?: unknown } | null)?.approval === id);
    if (values.json) return { stdout: JSON.stringify({ approval: a, history }, null, 2) };
    const action = a.action as { kind?: string; name?: string; input?: unknown } | null;
    const lines = [
      `approval   ${a.id} (${a.kind})`,
      `state      ${a.state}${a.decidedBy ? ` by ${a.decidedBy} at ${when(a.decidedAt)}` : ''}${a.decisionReason ? `: ${a.decisionReason}` : ''}`,
      `run        ${a.runId}  task ${a.taskId}  agent ${a.agent}`,
      `action     ${action?.kind ?? '?'}:${action?.name ?? '?'}`,
      `input      ${JSON.stringify(action?.input ?? null, null, 2).replaceAll('\n', '\n           ')}`,
      `rule       ${a.ruleId ?? '-'}`,
      `why        ${a.reason}`,
      `approvers  ${a.approvers}`,
      `requested  ${when(a.requestedAt)}   expires ${when(a.expiresAt)}${a.onExpiry ? ` (then ${JSON.stringify(a.onExpiry)})` : ''}`,
    ];
    if (a.supersedes) lines.push(`supersedes ${a.supersedes}`);
    lines.push('', 'history', ...history.map((e) => `  ${when(e.at)}  ${e.kind}${e.actor ? ` by ${e.actor}` : ''}${historyNote(e.data)}`));
    if (a.state === 'pending') lines.push('', `decide: spine approvals approve ${a.id} | spine approvals deny ${a.id} --reason "…"`);
    return { stdout: lines.join('\n') };
  } finally {
    await store.close();
  }
}

function historyNote(data: unknown): string {
  const d = (data ?? {}) as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
  const parts = [d.reason ? `: ${short(d.reason, 100)}` : '', d.escalation ? ` (${text(d.escalation)}${d.to ? ` to ${text(d.to)}` : ''})` : ''];
  return parts.join('');
}

async function decide(argv: string[], approve: boolean): Promise<CommandResult> {
  const { values, positionals } = parse(argv, { reason: { type: 'string' }, as: { type: 'string' }, ...(approve ? { 'raise-to': { type: 'string' } } : {}) } as const, 1);
  const id = positionals[0];
  if (!id) throw new InvalidInputError('<approval-id>', 'missing (see `spine approvals list`)');
  const raiseTo = values['raise-to'] as string | undefined;
  const usd = raiseTo === undefined ? undefined : Number(raiseTo);
  if (usd !== undefined && !(Number.isFinite(usd) && usd > 0)) throw new InvalidInputError('--raise-to', `must be an amount in USD greater than 0, got "${raiseTo}"`);
  const config = await maybeConfig(values);
  const store = await openCliStore(values, config);
  try {
    const raise = usd === undefined ? undefined : await ceilingRaise(store, config?.registry.policy.policy ?? null, id, usd, '--raise-to', Date.now());
    const a = await store.approvals.decide(id, { approve, actor: operator(values.as), ...(values.reason ? { reason: values.reason } : {}), ...(raise ? { raise } : {}) }, Date.now());
    if (values.json) return { stdout: JSON.stringify({ approval: a, ...(raise ? { raised: raise } : {}) }, null, 2) };
    const next =
      a.kind === 'escalation' && !approve ? `task ${a.taskId} of run ${a.runId} is dead-lettered` : `task ${a.taskId} of run ${a.runId} continues${approve ? '' : ' with the refusal'}`;
    return { stdout: `${a.id} ${a.state} by ${a.decidedBy}; ${next}${raise ? `; ${raise.ruleId}'s ceiling for this run raised to $${usd}` : ''}` };
  } finally {
    await store.close();
  }
}

async function grant(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { agent: { type: 'string' }, action: { type: 'string' }, days: { type: 'string' }, reason: { type: 'string' }, as: { type: 'string' } }, 0);
  if (!values.agent) throw new InvalidInputError('--agent', 'missing');
  if (!values.action) throw new InvalidInputError('--action', 'missing (e.g. tool:email.send or tool:crm.*)');
  if (!/^[a-z]+:.+/.test(values.action)) throw new InvalidInputError('--action', `must be kind:pattern, e.g. tool:email.*, got "${values.action}"`);
  const days = values.days === undefined ? undefined : parseDuration(`${values.days}d`);
  if (!days) throw new InvalidInputError('--days', values.days === undefined ? 'missing' : `must be a positive number, got "${values.days}"`);
  const config = await maybeConfig(values);
  if (config && !config.registry.agents.has(values.agent)) throw new InvalidInputError('--agent', `unknown agent "${values.agent}"`);
  const store = await openCliStore(values, config);
  try {
    const g = await store.grants.grant(
      { agent: values.agent, action: values.action, durationMs: days, actor: operator(values.as), ...(values.reason ? { reason: values.reason } : {}) },
      Date.now(),
    );
    if (values.json) return { stdout: JSON.stringify({ grant: g }, null, 2) };
    return { stdout: `${g.id}: ${g.agent} may ${g.action} without approval until ${when(g.expiresAt)}` };
  } finally {
    await store.close();
  }
}

async function grants(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { all: { type: 'boolean' } }, 0);
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const list = await store.grants.list(values.all ? {} : { activeAt: Date.now() });
    if (values.json) return { stdout: JSON.stringify({ grants: list }, null, 2) };
    if (list.length === 0) return { stdout: 'no standing grants' };
    return {
      stdout: table(
        ['GRANT', 'AGENT', 'ACTION', 'BY', 'UNTIL', 'REVOKED'],
        list.map((g) => [g.id, g.agent, g.action, g.grantedBy, when(g.expiresAt), g.revokedAt ? when(g.revokedAt) : '-']),
      ),
    };
  } finally {
    await store.close();
  }
}

async function revoke(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(argv, { as: { type: 'string' } }, 1);
  const id = positionals[0];
  if (!id) throw new InvalidInputError('<grant-id>', 'missing');
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    await store.grants.revoke(id, operator(values.as), Date.now());
    return { stdout: values.json ? JSON.stringify({ revoked: id }) : `revoked ${id}` };
  } finally {
    await store.close();
  }
}
