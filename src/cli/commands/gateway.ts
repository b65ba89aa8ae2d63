import { systemClock } from '../../core/clock.ts';
import { consoleLogger } from '../../core/log.ts';
import { ConfigWatcher } from '../../config/watch.ts';
import { directoryFromConfig } from '../../gateway/directory.ts';
import { startGateway } from '../../gateway/server.ts';
import { createChannels } from '../../channels/index.ts';
import type { ChannelAdapter } from '../../core/channel.ts';
import { Intake } from '../../intake/intake.ts';
import { intOption, parse } from '../args.ts';
import { configPath, loadCliConfig, openCliStore } from '../context.ts';
import type { CommandResult } from '../main.ts';

export const GATEWAY_HELP = `spine gateway [--host <addr>] [--port <n>] [--insecure-local] [--config <file>] [--db <url>]

Runs the HTTP gateway alone (no workers; run \`spine worker\` against the same store
for those) until Ctrl-C or SIGTERM, then drains: stops accepting, ends event streams,
lets in-flight requests finish (gateway.drainMs).
  --host <addr>      address to bind (default gateway.host, else 127.0.0.1)
  --port <n>         port (default gateway.port, else 7400; 0 picks a free one)
  --insecure-local   let requests without a token in as admin — loopback hosts only
                     (same as gateway.allowAnonymousLoopback: true)

Every route but /healthz, /readyz and the channel webhooks needs a bearer token
(create one with \`spine tokens create\`). A non-loopback --host is refused until a
token exists. The config file is watched: bindings, agents and channels reload;
host and port need a restart. See docs/gateway.md.`;

export async function gatewayCommand(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { host: { type: 'string' }, port: { type: 'string' }, 'insecure-local': { type: 'boolean' } }, 0);
  const port = intOption('port', values.port, 0);
  const config = await loadCliConfig(values);
  const store = await openCliStore(values, config);
  const log = consoleLogger('spine');
  const intake = new Intake(store, config.registry, config.routing, systemClock);
  let channels: ReadonlyMap<string, ChannelAdapter> = createChannels(config.channels);
  let directory = directoryFromConfig(config);
  let gw;
  try {
    gw = await startGateway({
      store,
      intake,
      settings: config.gateway,
      ...(values.host !== undefined ? { host: values.host } : {}),
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
  const watcher = new ConfigWatcher(
    configPath(values),
    (next) => {
      intake.reconfigure(next.registry, next.routing);
      channels = createChannels(next.channels);
      directory = directoryFromConfig(next);
    },
    log,
  );
  watcher.start();
  const names = [...channels.keys()];
  console.log(
    `spine gateway: listening on ${gw.url} (store ${store.description}; ${config.registry.agents.size} agent${config.registry.agents.size === 1 ? '' : 's'}; channels: ${names.join(', ') || 'none'})`,
  );

  const running = gw;
  const exitCode = await new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = () => {
      signals++;
      if (signals > 1) process.exit(130);
      console.log('spine gateway: draining (Ctrl-C again to force)…');
      watcher.stop();
      void running
        .close()
        .then(() => store.close())
        .then(
          () => resolve(0),
          (err: unknown) => {
            console.error(`spine gateway: shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
            resolve(1);
          },
        );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  return { exitCode };
}
