import { EXIT } from '../../core/errors.ts';
import { consoleLogger } from '../../core/log.ts';
import { ROLES, Runtime } from '../../runtime/runtime.ts';
import { intOption, parse } from '../args.ts';
import type { CommandResult } from '../command.ts';
import { loadCliConfig, openCliStore } from '../context.ts';
import { ShutdownSignals } from '../signals.ts';

export async function gatewayCommand(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { host: { type: 'string' }, port: { type: 'string' }, 'insecure-local': { type: 'boolean' } }, 0);
  const port = intOption('port', values.port, 0);
  const signals = new ShutdownSignals();
  try {
    const config = await loadCliConfig(values);
    const store = await openCliStore(values, config);
    const log = consoleLogger('spine');
    const runtime = new Runtime({
      config,
      store,
      services: ROLES.gateway,
      log,
      gateway: {
        ...(values.host !== undefined ? { host: values.host } : {}),
        ...(port !== undefined ? { port } : {}),
        ...(values['insecure-local'] ? { allowAnonymousLoopback: true } : {}),
      },
      load: (file) => loadCliConfig({ config: file }),
    });
    try {
      await runtime.start();
    } catch (err) {
      await runtime.close();
      throw err;
    }
    const agents = config.registry.agents.size;
    console.log(
      `spine gateway: listening on ${runtime.gateway?.url} (store ${store.description}; ${agents} agent${agents === 1 ? '' : 's'}; channels: ${runtime.channelNames.join(', ') || 'none'})`,
    );
    const lost = await Promise.race([signals.received.then(() => false), runtime.storeLost.then(() => true)]);
    console.log('spine gateway: draining (Ctrl-C again to force)…');
    try {
      await runtime.close();
    } catch (err) {
      console.error(`spine gateway: shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
      return { exitCode: 1 };
    }
    return { exitCode: lost ? EXIT.unavailable : 0 };
  } finally {
    signals.dispose();
  }
}
