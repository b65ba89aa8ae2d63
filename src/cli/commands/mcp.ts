import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { systemClock } from '../../core/clock.ts';
import type { Logger } from '../../core/log.ts';
import { ConfigWatcher } from '../../config/watch.ts';
import { directoryFromConfig, type AgentInfo } from '../../gateway/directory.ts';
import { createSpineMcpServer } from '../../gateway/mcp.ts';
import { Intake } from '../../intake/intake.ts';
import { parse } from '../args.ts';
import { configPath, loadCliConfig, openCliStore } from '../context.ts';
import type { CommandResult } from '../main.ts';

export const MCP_HELP = `spine mcp [--config <file>] [--db <url>] [--as <name>]

Serves Spine as an MCP server over stdio, for MCP clients that start a local
command (IDEs, desktop assistants). Its tools: submit_work (send work to an agent,
optionally waiting for the output), get_run, list_approvals, decide_approval and
list_agents. Work is submitted on channel "mcp" through the same intake as every
other door; run workers (\`spine up\` or \`spine worker\`) against the same store to
get it done. stdout carries the protocol only; logs go to stderr. The process acts
with full (admin) rights, like the rest of the CLI; --as names it in the audit trail
(default: mcp-stdio). The same tools are served over HTTP by the gateway at
POST /v1/mcp, with the caller's token scopes. See docs/mcp.md.

Client config example (Claude Desktop, Cursor, …):
  {"mcpServers": {"spine": {"command": "npx", "args": ["spine", "mcp", "--config", "/path/spine.config.json5"]}}}`;

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
  const intake = new Intake(store, config.registry, config.routing, systemClock);
  let directory: AgentInfo[] = directoryFromConfig(config);
  const watcher = new ConfigWatcher(
    configPath(values),
    (next) => {
      intake.reconfigure(next.registry, next.routing);
      directory = directoryFromConfig(next);
    },
    stderrLog,
  );
  const name = values.as ?? 'mcp-stdio';
  const server = createSpineMcpServer({ store, intake, clock: systemClock, agents: () => directory }, { name, tokenId: null, scopes: ['admin'] });
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    server.server.onclose = resolve;
  });
  try {
    await server.connect(transport);
    watcher.start();
    stderrLog.info(`serving MCP on stdio (store ${store.description}; ${config.registry.agents.size} agents)`);
    // The client ends the session by closing our stdin (or with a signal).
    const stop = () => void server.close().catch(() => {});
    process.stdin.once('end', stop);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    await closed;
  } finally {
    watcher.stop();
    await store.close();
  }
  return {};
}
