import { readFileSync, writeFileSync } from 'node:fs';
import { InvalidInputError } from '../../core/errors.ts';
import { readConfigFile } from '../../config/load.ts';
import { TIERS } from '../../routing/bindings.ts';
import { parse } from '../args.ts';
import { configPath, loadCliConfig, openCliStore } from '../context.ts';
import { withMcpCatalog, type CatalogView } from '../../runtime/mcp-catalog.ts';
import { table } from '../format.ts';
import type { CommandResult } from '../command.ts';

export async function agentsCommand(argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  if (sub === 'list') return list(rest);
  if (sub === 'add') return add(rest);
  throw new InvalidInputError('agents', sub ? `unknown subcommand "${sub}" (list, add)` : 'needs a subcommand: list or add');
}

async function list(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { bindings: { type: 'boolean' } }, 0);
  const config = await loadCliConfig(values);
  if (values.bindings) {
    const sorted = [...config.routing.bindings].sort((a, b) => TIERS.indexOf(a.tier) - TIERS.indexOf(b.tier) || a.order - b.order);
    if (values.json) return { stdout: JSON.stringify({ bindings: sorted }, null, 2) };
    if (sorted.length === 0) return { stdout: 'no bindings: envelopes can only be sent to an agent directly' };
    return {
      stdout: table(
        ['#', 'BINDING', 'TIER', 'MATCH', 'TARGET', 'SESSION'],
        sorted.map((b) => [
          String(b.order),
          b.id,
          b.tier,
          Object.entries(b.match).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('|') : String(v)}`).join(' ') || '*',
          b.agent ?? `router ${b.router!.agent} → ${b.router!.candidates.join('|')} (fallback ${b.router!.fallback})`,
          b.session ?? 'default',
        ]),
      ),
    };
  }
  const agents = [...config.registry.agents.values()];
  // MCP servers' tools come from the catalog in the store (written by spine up / spine worker when they connect).
  const hasMcp = Object.keys(config.raw.mcp?.servers ?? {}).length > 0;
  const store = hasMcp ? await openCliStore(values, config) : null;
  let catalog: CatalogView = { registry: config.registry, servers: {}, tools: [] };
  try {
    if (store) catalog = await withMcpCatalog(config, store);
  } finally {
    await store?.close();
  }
  const toolNames = [...catalog.registry.tools.keys()];
  const mcpNote = Object.entries(catalog.servers).map(([s, at]) =>
    at === null ? `mcp ${s}: not catalogued yet (its tools are listed when spine up or spine worker connects to it)` : `mcp ${s}: tools as listed at ${new Date(at).toISOString()}`,
  );
  if (values.json) {
    return {
      stdout: JSON.stringify(
        {
          agents: agents.map((a) => ({
            name: a.name,
            kind: a.agent.kind,
            input: a.input,
            output: a.output,
            tools: config.registry.policy.grantedTools(a.name, toolNames),
            timeoutMs: a.timeoutMs,
            maxAttempts: a.retry.maxAttempts,
          })),
          mcp: Object.fromEntries(Object.entries(catalog.servers).map(([s, at]) => [s, { catalogued: at === null ? null : new Date(at).toISOString(), tools: catalog.tools.filter((t) => t.server === s).map((t) => t.name) }])),
        },
        null,
        2,
      ),
    };
  }
  return {
    stdout: [
      table(
        ['AGENT', 'KIND', 'INPUT', 'OUTPUT', 'TOOLS', 'TIMEOUT', 'ATTEMPTS'],
        agents.map((a) => [
          a.name,
          a.agent.kind,
          a.input ?? '-',
          a.output ?? '-',
          config.registry.policy.grantedTools(a.name, toolNames).join(', ') || '-',
          `${a.timeoutMs} ms`,
          String(a.retry.maxAttempts),
        ]),
      ),
      ...(mcpNote.length ? ['', ...mcpNote] : []),
    ].join('\n'),
  };
}

async function add(argv: string[]): Promise<CommandResult> {
  const { values, positionals } = parse(
    argv,
    { module: { type: 'string' }, export: { type: 'string' }, command: { type: 'string' }, arg: { type: 'string', multiple: true }, description: { type: 'string' } },
    1,
  );
  const id = positionals[0];
  if (!id) throw new InvalidInputError('<id>', 'missing: the new agent’s name');
  if ((values.module === undefined) === (values.command === undefined)) throw new InvalidInputError('--module', 'give exactly one of --module (a function agent) or --command (any executable)');
  const file = configPath(values);
  const raw = readConfigFile(file);
  if (id in raw.agents) throw new InvalidInputError('<id>', `agent "${id}" exists already in ${file}`);
  const entry: Record<string, unknown> = values.module
    ? { kind: 'function', module: values.module, ...(values.export ? { export: values.export } : {}) }
    : { kind: 'command', command: [values.command!, ...(values.arg ?? [])] };
  if (values.description) entry.description = values.description;
  // Check the whole config with the new agent before writing anything.
  const { parseConfig } = await import('../../config/load.ts');
  const { compileConfig } = await import('../../runtime/config.ts');
  // Through the schema first: compiling alone would not check e.g. the agent's name.
  await compileConfig(file, parseConfig(file, { ...raw, agents: { ...raw.agents, [id]: entry } }));
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, insertAgent(text, id, entry));
  const check = await loadCliConfig(values);
  if (!check.registry.agents.has(id)) throw new Error(`could not place agent "${id}" in ${file}; add it by hand`);
  return { stdout: values.json ? JSON.stringify({ added: id, file }) : `added agent ${id} to ${file}` };
}

/** Inserts `id: {…},` as the first entry of the top-level `agents: {` object, keeping the rest of the file (and its comments) as is. */
function insertAgent(text: string, id: string, entry: Record<string, unknown>): string {
  const m = /^(\s*)(["']?)agents\2\s*:\s*\{/m.exec(text);
  if (!m) throw new InvalidInputError('--config', 'cannot find the `agents: {` block to edit');
  const at = m.index + m[0].length;
  const indent = `${m[1]}  `;
  const key = /^[A-Za-z_][A-Za-z0-9_]*$/.test(id) ? id : JSON.stringify(id);
  return `${text.slice(0, at)}\n${indent}${key}: ${JSON.stringify(entry)},${text.slice(at)}`;
}
