import { RUN_STATES } from '../../core/states.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { NotFoundError } from '../../core/errors.ts';
import { intOption, oneOf, parse } from '../args.ts';
import { maybeConfig, openCliStore } from '../context.ts';
import { duration, nextCursor, short, table, taskTree, verdictTable, when, withMore } from '../format.ts';
import type { CommandResult } from '../command.ts';
import type { Run } from '../../core/types.ts';
import { isTerminal, waitForRun } from '../../engine/runs.ts';
import { AuditFollower } from '../live-log.ts';
import { formatUsage } from '../../core/usage.ts';
import { runUsage } from '../../engine/usage.ts';


export async function runsCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'list':
      return list(rest);
    case 'show':
      return show(rest);
    case 'follow':
      return follow(rest);
    case 'cancel':
      return cancel(rest);
    case 'retry':
      return retry(rest);
    default:
      throw new InvalidInputError('runs', sub ? `unknown subcommand "${sub}" (list, show, follow, cancel, retry)` : 'needs a subcommand: list, show, follow, cancel or retry');
  }
}

async function list(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { state: { type: 'string' }, agent: { type: 'string' }, limit: { type: 'string' }, before: { type: 'string' }, quiet: { type: 'boolean', short: 'q' } }, 0);
  const state = oneOf('state', values.state, RUN_STATES);
  const limit = intOption('limit', values.limit) ?? 20;
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const runs = await store.runs.list({ limit, ...(state ? { state } : {}), ...(values.agent ? { agent: values.agent } : {}), ...(values.before ? { before: values.before } : {}) });
    if (values.json) return { stdout: JSON.stringify({ runs, next: nextCursor(runs, limit) }, null, 2) };
    // -q: the ids alone, one a line, for scripts (`spine runs retry $(spine runs list --state failed --limit 1 -q)`).
    if (values.quiet) return { stdout: runs.map((r) => r.id).join('\n') };
    if (runs.length === 0) return { stdout: 'no runs' };
    const out = table(
      ['RUN', 'AGENT', 'STATE', 'CREATED', 'TOOK', 'RESULT'],
      runs.map((r) => [r.id, r.agent, r.state, when(r.createdAt), duration(r), r.error ? r.error.code : short(r.output, 40)]),
    );
    return { stdout: withMore(out, runs, limit) };
  } finally {
    await store.close();
  }
}

async function show(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(argv, {}, 1);
  const id = positionals[0];
  if (!id) throw new InvalidInputError('<run-id>', 'missing');
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const run = await store.runs.get(id);
    if (!run) throw new NotFoundError('run', id);
    const tasks = await store.tasks.list({ runId: id, limit: 10_000 });
    const effects = await store.tasks.effects({ runId: id });
    const gates = await store.verdicts.list({ runId: id, limit: 1_000 });
    const usage = await runUsage(store, id);
    if (values.json) {
      const turns = Object.fromEntries(await Promise.all(tasks.map(async (t) => [t.id, await store.tasks.turns(t.id)] as const)));
      return { stdout: JSON.stringify({ run, tasks, turns, effects, gates, usage }, null, 2) };
    }
    const lines = [
      `run      ${run.id}`,
      `agent    ${run.agent}`,
      `state    ${run.state}`,
      `created  ${when(run.createdAt)}   took ${duration(run)}`,
      `input    ${short(run.input, 200)}`,
    ];
    if (run.output !== null) lines.push(`output   ${short(run.output, 400)}`);
    if (run.error) lines.push(`error    ${run.error.code}: ${run.error.message}`);
    lines.push('', 'tasks', taskTree(tasks));
    if (effects.length) {
      lines.push('', 'effects');
      lines.push(table(['KEY', 'TOOL', 'STATE', 'ATTEMPTS'], effects.map((e) => [e.key, e.tool, e.state, String(e.attempts)])));
    }
    if (gates.length) lines.push('', 'gates', verdictTable(gates));
    lines.push('', 'usage');
    if (usage.turns.length) {
      lines.push(
        table(
          ['TASK', 'AGENT', 'TURN', 'IN', 'OUT', 'COST'],
          usage.turns.map((u) => [u.taskId, u.agent, String(u.turn), String(u.inputTokens), String(u.outputTokens), u.costUsd === null ? '-' : `$${u.costUsd.toFixed(6)}`]),
        ),
      );
      lines.push(`total    ${usage.total.turns} turn${usage.total.turns === 1 ? '' : 's'}: ${formatUsage(usage.total)}`);
    } else {
      lines.push('no turn reported usage (only LLM agents and agents that answer `usage` do)');
    }
    const s = usage.spend;
    lines.push(`spend    settled $${s.settledUsd.toFixed(6)} / ${s.settledTokens} tokens; reserved now $${s.reservedUsd.toFixed(6)} / ${s.reservedTokens} tokens (cost ceilings, docs/policy.md)`);
    return { stdout: lines.join('\n') };
  } finally {
    await store.close();
  }
}

/**
 * Streams one run's live log — what it already did, then each step as it happens —
 * until it ends (or `--timeout` ms pass): `send --wait` for a run already submitted.
 */
async function follow(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(argv, { timeout: { type: 'string' } }, 1);
  const id = positionals[0];
  if (!id) throw new InvalidInputError('<run-id>', 'missing');
  const timeoutMs = intOption('timeout', values.timeout);
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    if (!(await store.runs.get(id))) throw new NotFoundError('run', id);
    const print = values.json ? () => {} : (line: string) => console.log(line);
    const follower = new AuditFollower(store, print, { runId: id });
    await follower.start();
    follower.follow();
    let final: Run;
    try {
      final = await waitForRun(store, id, { pollMs: 100, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
      await follower.poll();
    } finally {
      await follower.stop();
    }
    const done = isTerminal(final);
    const exitCode = final.state === 'succeeded' ? 0 : 1;
    if (values.json) return { stdout: JSON.stringify({ run: final }, null, 2), exitCode };
    const lines = [`\nrun ${final.id} ${final.state}${done ? ` in ${duration(final)}` : ` after ${timeoutMs} ms (still going; follow it again)`}`];
    if (final.state === 'succeeded') lines.push(`output: ${short(final.output, 400)}`);
    else if (final.error) lines.push(`error: ${final.error.code}: ${short(final.error.message, 400)}`);
    return { stdout: lines.join('\n'), exitCode };
  } finally {
    await store.close();
  }
}

async function cancel(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(argv, { reason: { type: 'string' } }, 1);
  const id = positionals[0];
  if (!id) throw new InvalidInputError('<run-id>', 'missing');
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const n = await store.runs.cancel(id, Date.now(), 'cli', values.reason);
    const run = await store.runs.get(id);
    return { stdout: values.json ? JSON.stringify({ run, cancelledTasks: n }, null, 2) : `cancelled run ${id} (${n} unfinished task${n === 1 ? '' : 's'})` };
  } finally {
    await store.close();
  }
}

async function retry(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(argv, {}, 1);
  const id = positionals[0];
  if (!id) throw new InvalidInputError('<run-id>', 'missing');
  const store = await openCliStore(values, await maybeConfig(values));
  try {
    const run = await store.runs.retry(id, Date.now(), 'cli');
    return { stdout: values.json ? JSON.stringify({ run }, null, 2) : `run ${id} queued again; follow it with \`spine runs show ${id}\`` };
  } finally {
    await store.close();
  }
}
