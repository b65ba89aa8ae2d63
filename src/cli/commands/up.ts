import { userInfo } from 'node:os';
import { EXIT, InvalidInputError, SpineError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { hashToken, newTokenSecret } from '../../gateway/auth.ts';
import { isLoopbackHost } from '../../gateway/config.ts';
import { silentLogger } from '../../core/log.ts';
import { cliLogger } from '../log.ts';
import type { Json } from '../../core/types.ts';
import { waitForRun } from '../../engine/runs.ts';
import { assertSomethingToSend, sendFromCli } from '../../runtime/cli-door.ts';
import { ROLES, Runtime, type ServiceName } from '../../runtime/runtime.ts';
import type { Service } from '../../runtime/service.ts';
import { intOption, jsonOption, parse } from '../args.ts';
import type { CommandResult } from '../command.ts';
import { loadCliConfig, openCliStore } from '../context.ts';
import { duration, taskTree } from '../format.ts';
import { AuditFollower } from '../live-log.ts';
import { ShutdownSignals } from '../signals.ts';

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
      input: { type: 'string', short: 'i' },
      exit: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
      'metrics-port': { type: 'string' },
      ...(mode.gateway
        ? { host: { type: 'string' }, port: { type: 'string' }, 'no-gateway': { type: 'boolean' }, 'insecure-local': { type: 'boolean' } }
        : {}),
    } as const,
    0,
  );
  if (values.exit && !values.send) throw new InvalidInputError('--exit', 'only makes sense with --send');
  if (values.input !== undefined && !values.send) throw new InvalidInputError('--input', 'only makes sense with --send');
  if (values.input !== undefined && values.text !== undefined) throw new InvalidInputError('--input', 'give either --text or --input, not both');
  const input = jsonOption('input', values.input);
  // A signal that arrives while starting up is honoured once everything has started, with a drain.
  const signals = new ShutdownSignals();
  try {
    const concurrency = intOption('concurrency', values.concurrency);
    const port = intOption('port', values.port as string | undefined, 0);
    const metricsPort = intOption('metrics-port', values['metrics-port'], 0);
    const withGateway = mode.gateway && !values['no-gateway'];
    const config = await loadCliConfig(values, { connect: true });
    if (values.send && !config.registry.agents.has(values.send)) {
      throw new InvalidInputError('--send', `unknown agent "${values.send}" (known: ${[...config.registry.agents.keys()].join(', ')})`);
    }
    if (values.send) assertSomethingToSend(config, { agent: values.send, text: values.text ?? '', ...(input === undefined ? {} : { input }) }, '--text');
    const store = await openCliStore(values, config);
    const log = values.quiet ? silentLogger : cliLogger('spine');
    const print = (line: string) => {
      if (!values.quiet) console.log(line);
    };
    const services: ServiceName[] = ROLES.up.filter((s) => s !== 'gateway' || withGateway);
    const runtime = new Runtime({
      config,
      store,
      services,
      log,
      gateway: {
        ...(values.host !== undefined ? { host: values.host as string } : {}),
        ...(port !== undefined ? { port } : {}),
        ...(values['insecure-local'] ? { allowAnonymousLoopback: true } : {}),
      },
      worker: concurrency ? { concurrency } : {},
      ...(metricsPort !== undefined ? { metrics: { port: metricsPort } } : {}),
      traces: 'env',
      load: (file) => loadCliConfig({ config: file }, { connect: true }),
    });

    // The live log prints runs as they progress; it starts before the worker and stops after its drain.
    // With --quiet it would only poll the audit log for nothing.
    const follower = new AuditFollower(store, print, { log });
    if (!values.quiet) {
      runtime.add(
        {
          name: 'live log',
          start: async () => {
            await follower.start();
            follower.follow();
          },
          stop: () => follower.stop(),
        },
        'before',
      );
    }
    // Resolves with the exit code when the process should stop on its own: `--send --exit` done, or the submission failed.
    let stopWith: Promise<number> = new Promise<number>(() => {});
    if (values.send) {
      const send = sendOnce(runtime, values.quiet ? null : follower, print, { agent: values.send, text: values.text ?? '', ...(input === undefined ? {} : { input }) }, Boolean(values.exit));
      runtime.add(send.service);
      stopWith = send.stopWith;
    }

    try {
      await runtime.start();
    } catch (err) {
      await runtime.close();
      throw err;
    }
    const dashboard = runtime.gateway && !values.quiet ? await dashboardLink(runtime) : null;
    const n = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;
    const names = runtime.channelNames;
    print(
      `spine ${withGateway ? 'up' : 'worker'}: ${n(config.registry.agents.size, 'agent')}, ${n(config.registry.tools.size, 'tool')}; store ${store.description}; ` +
        `worker ${runtime.worker?.id} (concurrency ${concurrency ?? config.worker.concurrency})${runtime.gateway ? `; gateway ${runtime.gateway.url}` : ''}` +
        `${names.length ? `; channels ${names.join(', ')}` : ''}`,
    );
    if (dashboard) print(`dashboard: ${dashboard.url}  (one-time login link for the local admin, valid 10 minutes)`);
    const exitCode = await Promise.race([signals.received.then(() => 0), stopWith, runtime.storeLost.then(() => EXIT.unavailable)]);
    print('spine: draining (Ctrl-C again to force)…');
    await dashboard?.revoke().catch(() => undefined);
    try {
      await runtime.close();
    } catch (err) {
      // A store that cannot take the drain's last writes (disk full, lost): say so and exit unavailable, not crash.
      console.error(`spine: shutdown incomplete: ${err instanceof Error ? err.message : String(err)}`);
      return { exitCode: EXIT.unavailable };
    }
    if (runtime.stopFailed) {
      console.error('spine: shutdown incomplete: the store could not take the drain (see above); leases not handed back expire and are taken over');
      return { exitCode: exitCode || EXIT.unavailable };
    }
    return { exitCode };
  } finally {
    signals.dispose();
  }
}

/**
 * `--send`: once everything has started, submits one envelope through the CLI door,
 * waits for its run and prints the task tree. Stopped with the runtime: the wait ends
 * (and stops reading the store) before the store closes.
 */
function sendOnce(
  runtime: Runtime,
  follower: AuditFollower | null,
  print: (line: string) => void,
  req: { agent: string; text: string; input?: Json },
  exit: boolean,
): { service: Service; stopWith: Promise<number> } {
  const abort = new AbortController();
  let task: Promise<void> = Promise.resolve();
  let stop!: (code: number) => void;
  const stopWith = new Promise<number>((resolve) => (stop = resolve));
  const service: Service = {
    name: 'send',
    start: async () => {
      task = (async () => {
        const { run } = await sendFromCli(runtime.intake, req);
        const final = await waitForRun(runtime.store, run.id, { pollMs: 25, signal: abort.signal, clock: runtime.clock });
        if (abort.signal.aborted) return;
        await follower?.poll();
        const tasks = await runtime.store.tasks.list({ runId: run.id, limit: 10_000 });
        print(`\nrun ${final.id} ${final.state} in ${duration(final)}\n${taskTree(tasks)}\n`);
        if (final.state === 'succeeded') print(`output:\n${JSON.stringify(final.output, null, 2)}\n`);
        if (exit) {
          stop(final.state === 'succeeded' ? 0 : 1);
          return;
        }
        print(
          `Spine is up${runtime.gateway ? ` (gateway ${runtime.gateway.url})` : ''}. Send more work from another terminal:\n` +
            `  npx spine send ${req.agent} "your question" --config ${runtime.config.file} --wait\nCtrl-C to stop.`,
        );
      })().catch((err: unknown) => {
        if (abort.signal.aborted) return;
        console.error(`spine: ${err instanceof Error ? err.message : String(err)}`);
        stop(err instanceof SpineError ? err.exitCode : 1);
      });
    },
    stop: async () => {
      abort.abort();
      await task;
    },
  };
  return { service, stopWith };
}

/**
 * The dashboard's one-time login link for whoever started `spine up` on this machine
 * (a loopback gateway only): a session token of its own, revoked when the process stops.
 */
async function dashboardLink(runtime: Runtime): Promise<{ url: string; revoke(): Promise<void> } | null> {
  const gw = runtime.gateway;
  if (!gw || !isLoopbackHost(gw.host)) return null;
  const secret = newTokenSecret();
  const token = await runtime.store.tokens.create({ id: newId('tok'), name: `dashboard:${userInfo().username}`, hash: hashToken(secret), scopes: ['admin'] }, Date.now());
  return {
    url: `${gw.url}/login?code=${gw.gateway.logins.issue(secret)}`,
    revoke: async () => {
      await runtime.store.tokens.revoke(token.id, Date.now()).catch(() => false);
    },
  };
}
