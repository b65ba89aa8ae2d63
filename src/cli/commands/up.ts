import { InvalidInputError } from '../../core/errors.ts';
import { consoleLogger, silentLogger } from '../../core/log.ts';
import type { Json } from '../../core/types.ts';
import { submitRun, waitForRun } from '../../engine/runs.ts';
import { Worker } from '../../engine/worker.ts';
import { intOption, parse } from '../args.ts';
import { loadCliConfig, openCliStore } from '../context.ts';
import { duration, taskTree } from '../format.ts';
import { AuditFollower } from '../live-log.ts';
import type { CommandResult } from '../main.ts';

export const UP_HELP = `spine up [--config <file>] [--db <url>] [--concurrency <n>] [--send <agent> [--text <text>] [--exit]] [--quiet]

Runs workers against the store (embedded SQLite by default) until Ctrl-C or
SIGTERM, then drains: stops leasing, lets in-flight turns finish (worker.drainMs),
and hands the rest back. Prints runs as they progress.
  --send <agent>  submit one run once started (with --text), print its task tree when done
  --exit          with --send: stop once that run is finished (exit 1 if it failed)`;

export const WORKER_HELP = `spine worker [--config <file>] [--db <url>] [--concurrency <n>]

Runs workers only (the gateway joins in a later version; today the same as \`spine up\`).`;

export async function upCommand(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(
    argv,
    { concurrency: { type: 'string' }, send: { type: 'string' }, text: { type: 'string' }, exit: { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' } },
    0,
  );
  void positionals;
  if (values.exit && !values.send) throw new InvalidInputError('--exit', 'only makes sense with --send');
  const concurrency = intOption('concurrency', values.concurrency);
  const config = await loadCliConfig(values);
  if (values.send && !config.registry.agents.has(values.send)) {
    throw new InvalidInputError('--send', `unknown agent "${values.send}" (known: ${[...config.registry.agents.keys()].join(', ')})`);
  }
  const store = await openCliStore(values, config);
  const print = (line: string) => {
    if (!values.quiet) console.log(line);
  };
  const worker = new Worker({
    store,
    registry: config.registry,
    options: { ...config.worker, ...(concurrency ? { concurrency } : {}) },
    log: values.quiet ? silentLogger : consoleLogger('spine'),
  });
  const follower = new AuditFollower(store, print);
  await follower.start();
  await worker.start();
  const follow = new AbortController();
  const following = follower.follow(follow.signal).catch((err: unknown) => console.error(`spine: live log stopped: ${String(err)}`));
  const n = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;
  print(
    `spine up: ${n(config.registry.agents.size, 'agent')}, ${n(config.registry.tools.size, 'tool')}; store ${store.description}; worker ${worker.id} (concurrency ${concurrency ?? config.worker.concurrency})`,
  );

  let stopping: Promise<void> | null = null;
  const shutdown = () => {
    stopping ??= (async () => {
      print('spine: draining (Ctrl-C again to force)…');
      await worker.stop();
      follow.abort();
      await following;
      await store.close();
    })();
    return stopping;
  };
  const done = new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = () => {
      signals++;
      if (signals > 1) process.exit(130);
      void shutdown().then(() => resolve(0));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    if (values.send) {
      const input: Json = { text: values.text ?? '' };
      void (async () => {
        const { run } = await submitRun(store, config.registry, { agent: values.send!, input, actor: 'cli' }, Date.now());
        const final = await waitForRun(store, run.id, { pollMs: 25 });
        await follower.poll();
        const tasks = await store.listTasks({ runId: run.id, limit: 10_000 });
        print(`\nrun ${final.id} ${final.state} in ${duration(final)}\n${taskTree(tasks)}\n`);
        if (final.state === 'succeeded') print(`output:\n${JSON.stringify(final.output, null, 2)}\n`);
        if (values.exit) {
          await shutdown();
          resolve(final.state === 'succeeded' ? 0 : 1);
        } else {
          print(`Spine is up. Send more work from another terminal:  npx spine send ${values.send} "your question" --config ${values.config ?? 'spine.config.json5'} --wait\nCtrl-C to stop.`);
        }
      })().catch((err: unknown) => {
        console.error(`spine: ${err instanceof Error ? err.message : String(err)}`);
        void shutdown().then(() => resolve(1));
      });
    }
  });
  return { exitCode: await done };
}
