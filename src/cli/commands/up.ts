import { systemClock } from '../../core/clock.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { consoleLogger, silentLogger } from '../../core/log.ts';
import type { Json } from '../../core/types.ts';
import { ConfigWatcher } from '../../config/watch.ts';
import type { CompiledConfig } from '../../config/load.ts';
import { closeMcpClients } from '../../tools/mcp/config.ts';
import { OutboxDispatcher } from '../../engine/outbox-dispatcher.ts';
import { submitRun, waitForRun } from '../../engine/runs.ts';
import { Worker } from '../../engine/worker.ts';
import { directoryFromConfig } from '../../gateway/directory.ts';
import { startGateway, type RunningGateway } from '../../gateway/server.ts';
import type { ChannelAdapter } from '../../core/channel.ts';
import { createChannels } from '../../channels/index.ts';
import { Intake } from '../../intake/intake.ts';
import { Scheduler } from '../../intake/schedules/scheduler.ts';
import { intOption, parse } from '../args.ts';
import { configPath, loadCliConfig, openCliStore } from '../context.ts';
import { duration, taskTree } from '../format.ts';
import { AuditFollower } from '../live-log.ts';
import type { CommandResult } from '../main.ts';

export const UP_HELP = `spine up [--config <file>] [--db <url>] [--concurrency <n>] [--host <addr>] [--port <n>] [--no-gateway] [--insecure-local]
         [--send <agent> [--text <text>] [--exit]] [--quiet]

Runs everything in one process on the store (embedded SQLite by default): the
gateway (127.0.0.1:7400), workers, the outbox dispatcher, the schedules and the
routing-agent sweep. Prints runs as they progress. The config file is watched and
reloaded (an invalid change is rejected and the running config kept). On Ctrl-C or
SIGTERM it drains: stops leasing and accepting, lets in-flight turns finish
(worker.drainMs), and hands the rest back.
  --no-gateway        workers, dispatcher and schedules only
  --host, --port      where the gateway listens (port 0 picks a free one)
  --insecure-local    let token-less requests in on loopback (see docs/gateway.md)
  --send <agent>      submit one run once started (with --text), print its task tree when done
  --exit              with --send: stop once that run is finished (exit 1 if it failed)`;

export const WORKER_HELP = `spine worker [--config <file>] [--db <url>] [--concurrency <n>] [--quiet]

Runs workers, the outbox dispatcher, the schedules and the routing-agent sweep,
without the gateway: for running many worker processes against one database
(run \`spine gateway\` separately). Drains on Ctrl-C or SIGTERM like \`spine up\`.`;

export function upCommand(argv: string[]): Promise<CommandResult> {
  return run(argv, { gateway: true });
}

export function workerCommand(argv: string[]): Promise<CommandResult> {
  return run(argv, { gateway: false });
}

async function run(argv: string[], mode: { gateway: boolean }): Promise<CommandResult> {
  const { values } = parse(
    argv,
    {
      concurrency: { type: 'string' },
      send: { type: 'string' },
      text: { type: 'string' },
      exit: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
      ...(mode.gateway
        ? { host: { type: 'string' }, port: { type: 'string' }, 'no-gateway': { type: 'boolean' }, 'insecure-local': { type: 'boolean' } }
        : {}),
    } as const,
    0,
  );
  if (values.exit && !values.send) throw new InvalidInputError('--exit', 'only makes sense with --send');
  // A signal that arrives while starting up is honoured once everything has started, with a drain.
  let signalled = 0;
  const early = () => void signalled++;
  process.on('SIGINT', early);
  process.on('SIGTERM', early);
  const concurrency = intOption('concurrency', values.concurrency);
  const port = intOption('port', values.port as string | undefined, 0);
  const withGateway = mode.gateway && !values['no-gateway'];
  let config = await loadCliConfig(values, { connect: true });
  if (values.send && !config.registry.agents.has(values.send)) {
    throw new InvalidInputError('--send', `unknown agent "${values.send}" (known: ${[...config.registry.agents.keys()].join(', ')})`);
  }
  const store = await openCliStore(values, config);
  const log = values.quiet ? silentLogger : consoleLogger('spine');
  const print = (line: string) => {
    if (!values.quiet) console.log(line);
  };

  const intake = new Intake(store, config.registry, config.routing, systemClock);
  let channels: ReadonlyMap<string, ChannelAdapter> = createChannels(config.channels);
  let directory = directoryFromConfig(config);
  let gateway: RunningGateway | null = null;
  if (withGateway) {
    try {
      gateway = await startGateway({
        store,
        intake,
        settings: config.gateway,
        ...(values.host !== undefined ? { host: values.host as string } : {}),
        ...(port !== undefined ? { port } : {}),
        ...(values['insecure-local'] ? { allowAnonymousLoopback: true } : {}),
        channels: () => channels,
        agents: () => directory,
        clock: systemClock,
        log,
      });
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  const follower = new AuditFollower(store, print);
  await follower.start();
  const worker = new Worker({
    store,
    registry: config.registry,
    options: { ...config.worker, ...(concurrency ? { concurrency } : {}) },
    historyLimit: config.routing.sessions.historyLimit,
    log,
    // Streamed model tokens go to live event-stream subscribers only (never the audit log).
    ...(gateway ? { onAgentEvent: (e) => gateway?.gateway.events.publishEphemeral(e.kind, e.runId, e) } : {}),
  });
  await worker.start();
  // A store that wakes other processes (PostgreSQL NOTIFY) needs only slow fallback polls.
  const crossProcess = store.capabilities.crossProcessWakeups;
  const dispatcher = new OutboxDispatcher({
    store,
    channels,
    options: { ...config.channels.outbox, pollMs: crossProcess ? Math.max(config.channels.outbox.pollMs, 5_000) : config.channels.outbox.pollMs },
    log,
  });
  await dispatcher.start();
  const scheduler = new Scheduler({ store, intake, schedules: config.schedules, log });
  await scheduler.start();
  intake.startSweeping(crossProcess ? 5_000 : 500, (err) => log.error('routing sweep failed', { error: String(err) }));

  const watcher = new ConfigWatcher(
    configPath(values),
    (next: CompiledConfig) => {
      config = next;
      worker.setRegistry(next.registry);
      worker.historyLimit = next.routing.sessions.historyLimit;
      intake.reconfigure(next.registry, next.routing);
      channels = createChannels(next.channels);
      directory = directoryFromConfig(next);
      dispatcher.reconfigure(channels);
      void scheduler.reconfigure(next.schedules).catch((err: unknown) => log.error('schedules reload failed', { error: String(err) }));
    },
    log,
    { connect: true },
  );
  watcher.start();

  const follow = new AbortController();
  // The live log only prints: with --quiet, following it would just poll the audit log (10 queries/s) for nothing.
  const following = values.quiet ? Promise.resolve() : follower.follow(follow.signal).catch((err: unknown) => console.error(`spine: live log stopped: ${String(err)}`));
  const n = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;
  print(
    `spine ${withGateway ? 'up' : 'worker'}: ${n(config.registry.agents.size, 'agent')}, ${n(config.registry.tools.size, 'tool')}; store ${store.description}; ` +
      `worker ${worker.id} (concurrency ${concurrency ?? config.worker.concurrency})${gateway ? `; gateway ${gateway.url}` : ''}` +
      `${channels.size ? `; channels ${[...channels.keys()].join(', ')}` : ''}`,
  );

  let stopping: Promise<void> | null = null;
  const shutdown = () => {
    stopping ??= (async () => {
      print('spine: draining (Ctrl-C again to force)…');
      watcher.stop();
      intake.stopSweeping();
      await gateway?.close();
      await scheduler.stop();
      await worker.stop();
      await dispatcher.stop();
      await closeMcpClients();
      follow.abort();
      await following;
      await store.close();
    })();
    return stopping;
  };
  const exitCode = await new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = () => {
      signals++;
      if (signals > 1) process.exit(130);
      void shutdown().then(() => resolve(0));
    };
    process.off('SIGINT', early);
    process.off('SIGTERM', early);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    if (signalled > 0) onSignal();
    if (values.send) {
      const input: Json = { text: values.text ?? '' };
      void (async () => {
        const { run } = await submitRun(store, config.registry, { agent: values.send!, input, actor: 'cli' }, Date.now());
        const final = await waitForRun(store, run.id, { pollMs: 25 });
        await follower.poll();
        const tasks = await store.tasks.list({ runId: run.id, limit: 10_000 });
        print(`\nrun ${final.id} ${final.state} in ${duration(final)}\n${taskTree(tasks)}\n`);
        if (final.state === 'succeeded') print(`output:\n${JSON.stringify(final.output, null, 2)}\n`);
        if (values.exit) {
          await shutdown();
          resolve(final.state === 'succeeded' ? 0 : 1);
        } else {
          print(
            `Spine is up${gateway ? ` (gateway ${gateway.url})` : ''}. Send more work from another terminal:\n` +
              `  npx spine send ${values.send} "your question" --config ${values.config ?? 'spine.config.json5'} --wait\nCtrl-C to stop.`,
          );
        }
      })().catch((err: unknown) => {
        console.error(`spine: ${err instanceof Error ? err.message : String(err)}`);
        void shutdown().then(() => resolve(1));
      });
    }
  });
  return { exitCode };
}
