import type { Logger } from '../../core/log.ts';
import { ROLES, Runtime } from '../../runtime/runtime.ts';
import { parse } from '../args.ts';
import type { CommandResult } from '../command.ts';
import { loadCliConfig, openCliStore } from '../context.ts';

/** Everything to stderr: stdout belongs to the protocol. */
const stderrLog: Logger = {
  info: (m, f) => process.stderr.write(`spine mcp info ${m}${f ? ' ' + JSON.stringify(f) : ''}\n`),
  warn: (m, f) => process.stderr.write(`spine mcp warn ${m}${f ? ' ' + JSON.stringify(f) : ''}\n`),
  error: (m, f) => process.stderr.write(`spine mcp error ${m}${f ? ' ' + JSON.stringify(f) : ''}\n`),
};

export async function mcpCommand(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { as: { type: 'string' } }, 0);
  // The MCP command runs no agents, so it does not connect to MCP servers itself.
  const config = await loadCliConfig(values);
  const store = await openCliStore(values, config);
  const runtime = new Runtime({ config, store, services: ROLES.mcp, log: stderrLog, mcp: { name: values.as ?? 'mcp-stdio' }, load: (file) => loadCliConfig({ config: file }) });
  try {
    await runtime.start();
    stderrLog.info(`serving MCP on stdio (store ${store.description}; ${config.registry.agents.size} agents)`);
    // The client ends the session by closing our stdin (or with a signal).
    const hangUp = new Promise<void>((resolve) => {
      process.stdin.once('end', resolve);
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    await Promise.race([runtime.mcpClosed, hangUp]);
  } finally {
    await runtime.close();
  }
  return {};
}
