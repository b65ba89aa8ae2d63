import { readFileSync } from 'node:fs';
import { ConfigError, EXIT, SpineError } from '../core/errors.ts';
import { AGENTS_HELP, agentsCommand } from './commands/agents.ts';
import { APPROVALS_HELP, approvalsCommand } from './commands/approvals.ts';
import { INIT_HELP, initCommand } from './commands/init.ts';
import { MCP_HELP, mcpCommand } from './commands/mcp.ts';
import { MIGRATE_HELP, migrateCommand } from './commands/migrate.ts';
import { POLICY_HELP, policyCommand } from './commands/policy.ts';
import { ROUTE_HELP, routeCommand } from './commands/route.ts';
import { RUNS_HELP, runsCommand } from './commands/runs.ts';
import { SEND_HELP, sendCommand } from './commands/send.ts';
import { SESSIONS_HELP, sessionsCommand } from './commands/sessions.ts';
import { DOCTOR_HELP, doctorCommand } from './commands/doctor.ts';
import { GATEWAY_HELP, gatewayCommand } from './commands/gateway.ts';
import { TOKENS_HELP, tokensCommand } from './commands/tokens.ts';
import { UP_HELP, WORKER_HELP, upCommand, workerCommand } from './commands/up.ts';

export interface CommandResult {
  stdout?: string;
  exitCode?: number;
}

export { EXIT };

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<CommandResult>; help: string; summary: string }> = {
  init: { run: initCommand, help: INIT_HELP, summary: 'scaffold a working project' },
  up: { run: upCommand, help: UP_HELP, summary: 'run the gateway and workers (embedded store by default) until stopped' },
  worker: { run: workerCommand, help: WORKER_HELP, summary: 'run workers, outbox and schedules without the gateway' },
  gateway: { run: gatewayCommand, help: GATEWAY_HELP, summary: 'run the HTTP gateway alone' },
  tokens: { run: tokensCommand, help: TOKENS_HELP, summary: 'create, list or revoke gateway API tokens' },
  send: { run: sendCommand, help: SEND_HELP, summary: 'submit work to an agent (--wait for the result)' },
  runs: { run: runsCommand, help: RUNS_HELP, summary: 'list, show, cancel or retry runs' },
  agents: { run: agentsCommand, help: AGENTS_HELP, summary: 'list agents or bindings; add an agent to the config' },
  route: { run: routeCommand, help: ROUTE_HELP, summary: 'explain which binding an envelope goes to' },
  sessions: { run: sessionsCommand, help: SESSIONS_HELP, summary: 'list, show, reset or fork sessions' },
  approvals: { run: approvalsCommand, help: APPROVALS_HELP, summary: 'list and decide approvals; standing grants' },
  policy: { run: policyCommand, help: POLICY_HELP, summary: 'explain how policy decides an action (executes nothing)' },
  mcp: { run: mcpCommand, help: MCP_HELP, summary: 'serve Spine as an MCP server over stdio (submit work, runs, approvals)' },
  migrate: { run: migrateCommand, help: MIGRATE_HELP, summary: 'apply pending schema migrations' },
  doctor: { run: doctorCommand, help: DOCTOR_HELP, summary: 'check the store: connectivity, schema, stuck leases, queue depth' },
};

const GLOBAL_HELP = `spine — durable, policy-governed orchestration for multi-agent systems

usage: spine <command> [options]

commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`)
  .join('\n')}

options for every command:
  --config, -c <file>   config file (default ./spine.config.json5, or SPINE_CONFIG)
  --db <url>            sqlite:<path> (default sqlite:.spine/spine.db) or postgres://… (or SPINE_DB)
  --durability <level>  strict (default: fsync before acknowledging) or fast
  --json                machine-readable output
  --help, -h            help for a command

exit codes: 0 ok, 1 work failed, 2 bad input or config, 3 not found / not allowed now, 4 schema mismatch,
            5 unavailable (store down, full or read-only): try again later`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(GLOBAL_HELP);
    return name ? EXIT.ok : EXIT.usage;
  }
  if (name === '--version' || name === '-v') {
    console.log(version());
    return EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`spine: unknown command "${name}"\n\n${GLOBAL_HELP}`);
    return EXIT.usage;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.help);
    return EXIT.ok;
  }
  const json = rest.includes('--json');
  try {
    const result = await command.run(rest);
    if (result.stdout !== undefined) console.log(result.stdout);
    return result.exitCode ?? EXIT.ok;
  } catch (err) {
    return reportError(err, json);
  }
}

function reportError(err: unknown, json: boolean): number {
  const code = exitCodeFor(err);
  if (json) {
    const body = err instanceof SpineError ? err.toInfo() : { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
    console.error(JSON.stringify({ error: body }, null, 2));
  } else if (err instanceof ConfigError) {
    console.error(`spine: invalid config ${err.file}:\n${err.issues.map((i) => `  ${i.path || '(file)'}: ${i.message}`).join('\n')}`);
  } else if (err instanceof SpineError) {
    console.error(`spine: ${err.message}`);
  } else {
    console.error(`spine: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  return code;
}

/** The exit code of a failed command: the catalogue's for a SpineError; anything else is a bug (1). */
function exitCodeFor(err: unknown): number {
  return err instanceof SpineError ? err.exitCode : EXIT.failed;
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
