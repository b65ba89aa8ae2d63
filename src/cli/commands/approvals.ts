import { APPROVAL_STATES } from '../../core/states.ts';
import { InvalidInputError } from '../../core/errors.ts';
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
        sub ? `unknown subcommand "${sub}" (list, approve, deny, grant, grants, revoke)` : 'needs a subcommand: list, approve, deny, grant, grants or revoke',
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

async function decide(argv: string[], approve: boolean): Promise<CommandResult> {
  const { values, positionals } = parse(argv, { reason: { type: 'string' }, as: { type: 'string' } }, 1);
  const id = positionals[0];
  if (!id) throw new InvalidInputError('<approval-id>', 'missing (see `spine approvals list`)');
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const a = await store.approvals.decide(id, { approve, actor: operator(values.as), ...(values.reason ? { reason: values.reason } : {}) }, Date.now());
    if (values.json) return { stdout: JSON.stringify({ approval: a }, null, 2) };
    return { stdout: `${a.id} ${a.state} by ${a.decidedBy}; task ${a.taskId} of run ${a.runId} continues` };
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
