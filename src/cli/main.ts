import { readFileSync } from 'node:fs';
import { ConfigError, EXIT, SpineError } from '../core/errors.ts';
import type { Command, CommandResult } from './command.ts';
import { HELP } from './help.ts';

export type { CommandResult };
export { EXIT };

/**
 * The commands. Each module is loaded only when its command runs, so `spine --version`
 * and `spine --help` load a handful of modules, not the engine, gateway and SDKs.
 */
const COMMANDS: Record<keyof typeof HELP, { load: () => Promise<Command>; summary: string }> = {
  init: { load: async () => (await import('./commands/init.ts')).initCommand, summary: 'scaffold a working project' },
  up: { load: async () => (await import('./commands/up.ts')).upCommand, summary: 'run the gateway and workers (embedded store by default) until stopped' },
  worker: { load: async () => (await import('./commands/up.ts')).workerCommand, summary: 'run workers, outbox and schedules without the gateway' },
  gateway: { load: async () => (await import('./commands/gateway.ts')).gatewayCommand, summary: 'run the HTTP gateway alone' },
  tokens: { load: async () => (await import('./commands/tokens.ts')).tokensCommand, summary: 'create, list or revoke gateway API tokens' },
  send: { load: async () => (await import('./commands/send.ts')).sendCommand, summary: 'submit work to an agent (--wait for the result)' },
  runs: { load: async () => (await import('./commands/runs.ts')).runsCommand, summary: 'list, show, cancel or retry runs' },
  agents: { load: async () => (await import('./commands/agents.ts')).agentsCommand, summary: 'list agents or bindings; add an agent to the config' },
  route: { load: async () => (await import('./commands/route.ts')).routeCommand, summary: 'explain which binding an envelope goes to' },
  sessions: { load: async () => (await import('./commands/sessions.ts')).sessionsCommand, summary: 'list, show, reset or fork sessions' },
  memory: { load: async () => (await import('./commands/memory.ts')).memoryCommand, summary: 'search, read, write, trace and forget shared memory; the merge queue' },
  approvals: { load: async () => (await import('./commands/approvals.ts')).approvalsCommand, summary: 'list and decide approvals; standing grants' },
  briefs: { load: async () => (await import('./commands/briefs.ts')).briefsCommand, summary: 'list and show briefs: synthesised results with provenance and conflicts' },
  mesh: { load: async () => (await import('./commands/mesh.ts')).meshCommand, summary: 'the mesh log: direct agent-to-agent calls as the audit trail recorded them' },
  policy: { load: async () => (await import('./commands/policy.ts')).policyCommand, summary: 'explain how policy decides an action (executes nothing)' },
  gates: { load: async () => (await import('./commands/gates.ts')).gatesCommand, summary: 'list gates, test one on an input (changes nothing), query verdicts' },
  schedules: { load: async () => (await import('./commands/schedules.ts')).schedulesCommand, summary: 'list schedules and heartbeats (fired, skipped, paused); resume a paused heartbeat' },
  breakers: { load: async () => (await import('./commands/breakers.ts')).breakersCommand, summary: 'list the circuit breakers; close one by hand' },
  mcp: { load: async () => (await import('./commands/mcp.ts')).mcpCommand, summary: 'serve Spine as an MCP server over stdio (submit work, runs, approvals)' },
  migrate: { load: async () => (await import('./commands/migrate.ts')).migrateCommand, summary: 'apply pending schema migrations' },
  audit: { load: async () => (await import('./commands/audit.ts')).auditCommand, summary: 'verify, tail, export or prove the tamper-evident audit trail' },
  why: { load: async () => (await import('./commands/why.ts')).whyCommand, summary: 'why did this happen: the causal chain of a run, task, effect, approval or envelope' },
  doctor: { load: async () => (await import('./commands/doctor.ts')).doctorCommand, summary: 'check the store: connectivity, schema, stuck leases, queue depth' },
};

function isCommand(name: string): name is keyof typeof COMMANDS {
  return Object.hasOwn(COMMANDS, name);
}

const GLOBAL_HELP = `spine — durable, policy-governed orchestration for multi-agent systems

usage: spine <command> [options]

commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`)
  .join('\n')}
  version   print Spine's version (also --version)

options for every command:
  --config, -c <file>   config file (default ./spine.config.json5, or SPINE_CONFIG)
  --db <url>            sqlite:<path> (default sqlite:.spine/spine.db) or postgres://… (or SPINE_DB)
  --durability <level>  strict (default: fsync before acknowledging) or fast
  --json                machine-readable output
  --help, -h            help for a command
  --create              make a new, empty SQLite store even where one existed and is now missing
  --allow-insecure-files  load a config or module writable by group or others (development only)

exit codes: 0 ok, 1 work failed, 2 bad input or config, 3 not found / not allowed now, 4 schema mismatch,
            5 unavailable (store down, full or read-only): try again later,
            6 audit trail tampered, 7 audit trail not fully verifiable`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number> {
  // The override is read where files are checked (config/file-mode.ts), for every command alike.
  if (argv.includes('--allow-insecure-files')) process.env.SPINE_ALLOW_INSECURE_FILES = '1';
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(GLOBAL_HELP);
    return name ? EXIT.ok : EXIT.usage;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    console.log(version());
    return EXIT.ok;
  }
  if (!isCommand(name)) {
    console.error(`spine: unknown command "${name}"\n\n${GLOBAL_HELP}`);
    return EXIT.usage;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(HELP[name]);
    return EXIT.ok;
  }
  const json = rest.includes('--json');
  try {
    const run = await COMMANDS[name].load();
    const result = await run(rest);
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
  // Run directly (`node src/cli/main.ts`, as `npm start` does): the modules each command
  // loads come from the compile cache bin/spine.js also uses, so they are not stripped
  // and compiled again (~9 MB less in an idle `spine up`, and a faster start).
  (await import('node:module')).enableCompileCache?.();
  process.exitCode = await main(process.argv.slice(2));
}
