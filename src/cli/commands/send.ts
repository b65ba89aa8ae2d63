import { InvalidInputError } from '../../core/errors.ts';
import type { Json, Run } from '../../core/types.ts';
import { isTerminal, submitRun, waitForRun } from '../../engine/runs.ts';
import { intOption, parse } from '../args.ts';
import { loadCliConfig, openCliStore } from '../context.ts';
import { duration, short, taskTree } from '../format.ts';
import type { CommandResult } from '../main.ts';

export const SEND_HELP = `spine send <agent> [text] [--input <json>] [--idempotency-key <key>] [--tenant <t>] [--wait [--timeout <ms>]] [--json]

Submits work to an agent and prints the run id. The input is {"text": <text>}, or
the JSON given with --input. With --wait, blocks until the run is terminal and
prints it; the exit code is then 0 if it succeeded and 1 if it failed or was cancelled.
--tenant names whose spend this is, for daily cost ceilings (default: default).`;

export async function sendCommand(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(
    argv,
    {
      input: { type: 'string', short: 'i' },
      'idempotency-key': { type: 'string' },
      tenant: { type: 'string' },
      wait: { type: 'boolean', short: 'w' },
      timeout: { type: 'string' },
    },
    2,
  );
  const [agent, text] = positionals;
  if (!agent) throw new InvalidInputError('<agent>', 'missing: which agent should do the work? (see `spine agents` in your config)');
  if (text !== undefined && values.input !== undefined) throw new InvalidInputError('--input', 'give either a text argument or --input, not both');
  let input: Json;
  if (values.input !== undefined) {
    try {
      input = JSON.parse(values.input) as Json;
    } catch (err) {
      throw new InvalidInputError('--input', `not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
  } else {
    input = { text: text ?? '' };
  }
  const timeoutMs = intOption('timeout', values.timeout);
  const config = await loadCliConfig(values);
  const store = await openCliStore(values, config);
  try {
    const { run, created } = await submitRun(
      store,
      config.registry,
      { agent, input, idempotencyKey: values['idempotency-key'] ?? null, actor: 'cli', ...(values.tenant ? { tenant: values.tenant } : {}) },
      Date.now(),
    );
    if (!values.wait) {
      if (values.json) return { stdout: JSON.stringify({ run, created }, null, 2) };
      return { stdout: created ? `${run.id}` : `${run.id} (existing run for this idempotency key)` };
    }
    const warn = setTimeout(() => {
      void store.workers.list({ aliveSince: Date.now() - 60_000 }).then((live) => {
        if (live.length === 0) process.stderr.write(`spine: no worker is running against ${store.description}; start one with \`spine up\`\n`);
      });
    }, 2_000);
    let final: Run;
    try {
      final = await waitForRun(store, run.id, { pollMs: 25, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    } finally {
      clearTimeout(warn);
    }
    const tasks = await store.tasks.list({ runId: run.id, limit: 10_000 });
    const exitCode = final.state === 'succeeded' ? 0 : 1;
    if (values.json) return { stdout: JSON.stringify({ run: final, tasks }, null, 2), exitCode };
    const lines = [`run ${final.id} ${final.state} in ${duration(final)}`, taskTree(tasks)];
    if (!isTerminal(final)) lines.push(`(still ${final.state} after ${timeoutMs} ms; follow it with \`spine runs show ${final.id}\`)`);
    if (final.state === 'succeeded') lines.push('', 'output:', JSON.stringify(final.output, null, 2));
    else if (final.error) lines.push('', `error: ${final.error.code}: ${short(final.error.message, 400)}`);
    return { stdout: lines.join('\n'), exitCode: isTerminal(final) ? exitCode : 1 };
  } finally {
    await store.close();
  }
}
