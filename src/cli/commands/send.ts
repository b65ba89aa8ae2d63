import { InvalidInputError } from '../../core/errors.ts';
import type { Run } from '../../core/types.ts';
import { isTerminal, waitForRun } from '../../engine/runs.ts';
import { assertSomethingToSend, cliIntake, sendFromCli } from '../../runtime/cli-door.ts';
import { intOption, jsonOption, parse } from '../args.ts';
import type { CommandResult } from '../command.ts';
import { loadCliConfig, openCliStore } from '../context.ts';
import { duration, short, taskTree } from '../format.ts';
import { WorkerWatch } from '../workers.ts';
import { readBatch, sendBatch } from './send-batch.ts';

export async function sendCommand(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(
    argv,
    {
      input: { type: 'string', short: 'i' },
      'idempotency-key': { type: 'string' },
      tenant: { type: 'string' },
      wait: { type: 'boolean', short: 'w' },
      timeout: { type: 'string' },
      batch: { type: 'string' },
    },
    2,
  );
  const [agent, text] = positionals;
  if (values.batch !== undefined) return sendBatchCommand(values, agent, text);
  if (!agent) throw new InvalidInputError('<agent>', 'missing: which agent should do the work? (see `spine agents` in your config)');
  if (text !== undefined && values.input !== undefined) throw new InvalidInputError('--input', 'give either a text argument or --input, not both');
  const input = jsonOption('input', values.input);
  const timeoutMs = intOption('timeout', values.timeout);
  const config = await loadCliConfig(values);
  assertSomethingToSend(config, { agent, text: text ?? '', ...(input === undefined ? {} : { input }) }, '[text]');
  const store = await openCliStore(values, config);
  try {
    const { run, envelope, created } = await sendFromCli(cliIntake(config, store), {
      agent,
      text: text ?? '',
      ...(input === undefined ? {} : { input }),
      idempotencyKey: values['idempotency-key'] ?? null,
      ...(values.tenant ? { tenant: values.tenant } : {}),
    });
    if (!values.wait) {
      if (values.json) return { stdout: JSON.stringify({ run, envelope, created }, null, 2) };
      return { stdout: created ? `${run.id}` : `${run.id} (existing run for this idempotency key)` };
    }
    // A hint when nothing is running the work: checked at once, then every heartbeat; stopped before the store closes.
    const watch = new WorkerWatch(store, {
      heartbeatMs: config.worker.heartbeatMs,
      onNone: () => process.stderr.write(`spine: no worker is running against ${store.description}; start one with \`spine up\` (still waiting)\n`),
    });
    watch.start();
    let final: Run;
    try {
      final = await waitForRun(store, run.id, { pollMs: 25, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    } finally {
      await watch.stop();
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

async function sendBatchCommand(values: { batch?: string; json?: boolean; tenant?: string; wait?: boolean; input?: string; 'idempotency-key'?: string }, agent: string | undefined, text: string | undefined): Promise<CommandResult> {
  for (const [flag, given] of [['--wait', values.wait], ['--input', values.input], ['--idempotency-key', values['idempotency-key']], ['a text argument', text]] as const) {
    if (given !== undefined && given !== false) throw new InvalidInputError('--batch', `${flag} does not go with --batch: give it per line in the file`);
  }
  const items = readBatch(values.batch!, agent);
  const config = await loadCliConfig(values);
  const store = await openCliStore(values, config);
  try {
    return await sendBatch(items, config, store, { json: values.json === true, ...(values.tenant ? { tenant: values.tenant } : {}) });
  } finally {
    await store.close();
  }
}
