import { existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import JSON5 from 'json5';
import type { Agent, AgentFunction, ToolFunction } from '../core/agent.ts';
import type { A2aAgentConfig } from '../agents/a2a/schema.ts';
import type { CommandAgentOptions } from '../agents/command-agent.ts';
import type { HttpAgentConfig } from '../agents/http/schema.ts';
import type { AgentCatalog, AgentFactory } from '../agents/kind.ts';
import type { LlmAgentConfig } from '../agents/llm/schema.ts';
import type { McpConfig, McpLoadContext } from '../tools/mcp/schema.ts';
import { ConfigError, type FieldIssue } from '../core/errors.ts';
import { zodIssues } from '../core/issues.ts';
import { registerSecretEnv, registerSecretsIn } from '../core/redact.ts';
import { ContractRegistry } from '../contracts/registry.ts';
import { BUILTIN_CONTRACTS } from '../contracts/builtin.ts';
import type { Json } from '../core/types.ts';
import { DEFAULT_LIMITS, DEFAULT_RETRY, DEFAULT_TIMEOUT_MS, DEFAULT_WORKER, type Cost, type Registry, type RetryPolicy, type ServerProbe, type WorkerOptions } from '../engine/options.ts';
import { compileMesh } from './mesh.ts';
import { createRegistry, type AgentInit, type ToolInit } from '../engine/registry.ts';
import { compileAuditSettings, type AuditSettings } from '../audit/settings.ts';
import { compileGateway, type GatewaySettings } from '../gateway/config.ts';
import { compileChannels, type ChannelSettings } from '../channels/config.ts';
import type { RoutingConfig } from '../intake/intake.ts';
import { compileSchedules, type ScheduleSettings } from '../intake/schedules/config.ts';
import { compilePolicy, heartbeatCeiling, withCeilings } from '../policy/rules.ts';
import { compileMemory, compileMemoryGrants, compileRecall } from '../memory/settings.ts';
import { compileBindings } from '../routing/bindings.ts';
import { compileSessions } from '../routing/sessions.ts';
import { compileBreakers, compileGates } from '../validation/config.ts';
import { compileStuck } from '../validation/stuck.ts';
import type { buildProbe } from '../agents/probes.ts';
import type { Durability } from '../store/store.ts';
import { checkPatterns, type Catalog, type PatternUse } from './catalog-check.ts';
import { insecureFileReason } from './file-mode.ts';
import { compileJoin, type JoinPolicy, type JoinSpec } from '../core/join.ts';
import { compileSynthesis } from '../synthesis/config.ts';
import { configSchema, type AllowDeny, type SpineConfigFile } from './schema.ts';

export { DEFAULT_CONFIG_FILE } from './file.ts';

/** A config file compiled once into the checked form the engine runs with. */
export interface CompiledConfig {
  file: string;
  dir: string;
  registry: Registry;
  routing: RoutingConfig;
  gateway: GatewaySettings;
  channels: ChannelSettings;
  schedules: ScheduleSettings;
  worker: WorkerOptions;
  durability: Durability;
  audit: AuditSettings;
  raw: SpineConfigFile;
  /** Compiled with `connect`: each MCP server's tools now in the registry, by server (the catalog the runtime stores). */
  mcpTools?: Record<string, string[]>;
  /** What works but is not whole: e.g. an MCP server left out because its `{env}` secret is unset. */
  warnings?: FieldIssue[];
}

/** Agents and tools supplied from TypeScript rather than the config file. */
export interface ProgrammaticParts {
  agents?: Record<string, AgentFunction>;
  tools?: Record<string, ToolFunction>;
}

/** Reads and validates a config file; every problem is reported with the path of the bad field. */
export function readConfigFile(file: string): SpineConfigFile {
  if (!existsSync(file)) {
    throw new ConfigError(file, [{ path: '', message: 'file not found (create one with `spine init`, or pass --config)' }]);
  }
  const insecure = insecureFileReason(file);
  if (insecure) throw new ConfigError(file, [{ path: '', message: insecure }]);
  let parsed: unknown;
  try {
    parsed = JSON5.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `not valid JSON5: ${err instanceof Error ? err.message : String(err)}` }]);
  }
  return parseConfig(file, parsed);
}

export function parseConfig(file: string, value: unknown): SpineConfigFile {
  const result = configSchema.safeParse(value);
  if (!result.success) throw new ConfigError(file, zodIssues(result.error));
  return result.data;
}

/** Loads, validates and compiles a config: modules are imported and every reference checked. */
export async function loadConfig(file: string, parts: ProgrammaticParts, opts: CompileOptions): Promise<CompiledConfig> {
  const abs = resolve(file);
  const raw = readConfigFile(abs);
  return compileConfig(abs, raw, parts, opts);
}

/**
 * The adapters a config compiles into: agent kinds and tool sources. The config
 * compiler wires none itself; the runtime hands them in (src/runtime/config.ts), so
 * an adapter's module (and its SDK) loads only when a config uses it.
 */
export interface ConfigAdapters {
  function: (fn: AgentFunction) => Agent;
  command: (opts: CommandAgentOptions) => Agent;
  http: AgentFactory<HttpAgentConfig>;
  llm: AgentFactory<LlmAgentConfig>;
  a2a: AgentFactory<A2aAgentConfig>;
  /** Builds an agent's health probe (agents/probes.ts). */
  probe: typeof buildProbe;
  /** Connects to MCP servers and returns their tools. */
  mcpTools: (cfg: McpConfig, ctx: McpLoadContext) => Promise<Record<string, ToolInit>>;
}

export interface CompileOptions {
  adapters: ConfigAdapters;
  /** Connect to MCP servers to bring their tools into the catalog (commands that run agents). */
  connect?: boolean;
}

export async function compileConfig(file: string, raw: SpineConfigFile, parts: ProgrammaticParts, opts: CompileOptions): Promise<CompiledConfig> {
  const dir = dirname(file);
  const { adapters } = opts;
  // Every secret the config names is registered before anything can fail with it in hand.
  registerSecretEnv();
  registerSecretsIn(raw);
  const issues: FieldIssue[] = [];
  const retry: RetryPolicy = { ...DEFAULT_RETRY, ...raw.retry };
  if (retry.maxMs < retry.initialMs) issues.push({ path: 'retry.maxMs', message: 'must be at least retry.initialMs' });

  const contracts = new ContractRegistry();
  for (const [id, def] of Object.entries(raw.contracts ?? {})) {
    const schema = typeof def.schema === 'string' ? readSchemaFile(dir, def.schema, `contracts.${id}.schema`, issues) : (def.schema as Json);
    if (schema === undefined) continue;
    for (const issue of contracts.add(id, { schema, ...(def.accepts ? { accepts: def.accepts } : {}) })) {
      issues.push({ path: `contracts.${id}${issue.path ? '.' + issue.path : ''}`, message: issue.message });
    }
  }
  const known = Object.keys(raw.contracts ?? {});
  const builtin = BUILTIN_CONTRACTS.map((b) => b.id);
  const checkContract = (id: string | undefined, path: string) => {
    if (id !== undefined && !known.includes(id) && !builtin.includes(id)) issues.push({ path, message: `unknown contract ${id} (declared: ${known.join(', ') || 'none'})` });
  };
  for (const [id, def] of Object.entries(raw.contracts ?? {})) (def.accepts ?? []).forEach((a, i) => checkContract(a, `contracts.${id}.accepts.${i}`));

  const agents: Record<string, AgentInit> = {};
  const tools: Record<string, ToolInit> = {};
  const catalog: AgentCatalog = {
    contractSchema: (id) => contracts.get(id)?.schema,
    tool: (n) => {
      const t = tools[n];
      return t && { description: t.description, input: t.input ?? null };
    },
    toolNames: () => Object.keys(tools),
    agent: (n) => {
      const a = raw.agents[n];
      return a ? { description: a.description, input: a.input ?? null } : n in (parts.agents ?? {}) ? { input: null } : undefined;
    },
  };
  const agentNamesAll = [...Object.keys(raw.agents), ...Object.keys(parts.agents ?? {})];
  for (const [name, cfg] of Object.entries(raw.agents)) {
    const path = `agents.${name}`;
    checkContract(cfg.input, `${path}.input`);
    checkContract(cfg.output, `${path}.output`);
    for (const target of grantList(cfg.grants?.handoffs).allow) {
      if (!target.includes('*') && !(target in raw.agents)) issues.push({ path: `${path}.grants.handoffs`, message: `unknown agent "${target}"` });
    }
    const common: Omit<AgentInit, 'agent'> = {
      ...(cfg.description === undefined ? {} : { description: cfg.description }),
      timeoutMs: cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      retry: { ...retry, ...cfg.retry },
      input: cfg.input ?? null,
      output: cfg.output ?? null,
      grants: {
        tools: grantList(cfg.grants?.tools),
        handoffs: cfg.grants?.handoffs === undefined ? null : grantList(cfg.grants.handoffs),
        memory: compileMemoryGrants(cfg.grants?.memory),
      },
      recall: compileRecall(cfg.recall),
      cost: toCost(cfg.cost),
      onExhausted: cfg.onExhausted ?? 'dead',
      fallback: cfg.fallback ?? null,
      join: cfg.join ? compiledJoin(cfg.join) : null,
      synthesis: cfg.synthesis ? compileSynthesis(cfg.synthesis, agentNamesAll, `${path}.synthesis`, issues) : null,
    };
    if (cfg.kind === 'function') {
      const fn = await importExport(dir, cfg.module, cfg.export, `${path}.module`, issues);
      if (fn !== undefined) {
        if (typeof fn === 'function') agents[name] = { ...common, agent: adapters.function(fn as AgentFunction) };
        else issues.push({ path: `${path}.${cfg.export ? 'export' : 'module'}`, message: `export "${cfg.export ?? 'default'}" is not a function` });
      }
    } else if (cfg.kind === 'command') {
      const [exe, ...args] = cfg.command;
      const command = [exe!.startsWith('.') ? resolve(dir, exe!) : exe!, ...args];
      checkCommand(command, dir, `${path}.command`, issues);
      const cwd = cfg.cwd === undefined ? dir : resolve(dir, cfg.cwd);
      if (!existsSync(cwd)) issues.push({ path: `${path}.cwd`, message: `folder not found: ${cwd}` });
      agents[name] = {
        ...common,
        agent: adapters.command({
          name,
          command,
          cwd,
          ...(cfg.env ? { env: cfg.env } : {}),
          ...(cfg.inheritEnv ? { inheritEnv: cfg.inheritEnv } : {}),
          ...(cfg.maxOutputBytes ? { maxOutputBytes: cfg.maxOutputBytes } : {}),
          ...(cfg.maxMemoryMb ? { maxMemoryMb: cfg.maxMemoryMb } : {}),
        }),
      };
    } else {
      // Adapter kinds (http, llm, a2a) build themselves from their own config section.
      const ctx = { name, dir, path, issues, agentNames: Object.keys(raw.agents), catalog };
      // Factories may be sync or async (an A2A agent fetches its card).
      const agent = await (cfg.kind === 'http' ? adapters.http(cfg, ctx) : cfg.kind === 'llm' ? adapters.llm(cfg, ctx) : adapters.a2a(cfg, ctx));
      if (agent) agents[name] = { ...common, agent };
    }
  }
  for (const [name, fn] of Object.entries(parts.agents ?? {})) {
    if (name in raw.agents) issues.push({ path: `agents.${name}`, message: 'defined both in the config file and in code' });
    agents[name] = { agent: adapters.function(fn), retry, grants: { tools: { allow: ['*'], deny: [] } } };
  }
  if (Object.keys(raw.agents).length === 0 && Object.keys(parts.agents ?? {}).length === 0) {
    issues.push({ path: 'agents', message: 'at least one agent is required' });
  }

  for (const [name, cfg] of Object.entries(raw.tools ?? {})) {
    checkContract(cfg.input, `tools.${name}.input`);
    checkContract(cfg.output, `tools.${name}.output`);
    const fn = await importExport(dir, cfg.module, cfg.export, `tools.${name}.module`, issues);
    if (fn === undefined) continue;
    if (typeof fn !== 'function') {
      issues.push({ path: `tools.${name}.${cfg.export ? 'export' : 'module'}`, message: `export "${cfg.export ?? 'default'}" is not a function` });
      continue;
    }
    tools[name] = {
      run: fn as ToolFunction,
      ...(cfg.description ? { description: cfg.description } : {}),
      input: cfg.input ?? null,
      output: cfg.output ?? null,
      sideEffect: cfg.sideEffect ?? 'external',
      cost: toCost(cfg.cost),
    };
  }
  for (const [name, fn] of Object.entries(parts.tools ?? {})) tools[name] = { run: fn };
  const mcpTools: Record<string, string[]> = {};
  const warnings: FieldIssue[] = [];
  const mcpChecks: NonNullable<McpLoadContext['checks']> = {};
  if (opts.connect && raw.mcp) {
    for (const server of Object.keys(raw.mcp.servers ?? {})) mcpTools[server] = [];
    for (const [name, tool] of Object.entries(await adapters.mcpTools(raw.mcp, { dir, issues, warnings, checks: mcpChecks }))) {
      if (name in tools) issues.push({ path: 'mcp', message: `MCP tool ${name} clashes with a configured tool` });
      else {
        tools[name] = tool;
        // Catalog names are `<server>.<tool>`, and server names have no dot.
        mcpTools[name.slice(0, name.indexOf('.'))]?.push(name);
      }
    }
    // A server left out (an unset secret) did not list anything: the catalog keeps what it last listed.
    for (const w of warnings) delete mcpTools[/^mcp\.servers\.([^.]+)/.exec(w.path)?.[1] ?? ''];
  }

  checkFallbacks(raw.agents, issues);
  const policy = compilePolicy(raw.policy, issues);
  const memory = compileMemory(raw.memory, known, [...Object.keys(raw.agents), ...Object.keys(parts.agents ?? {})], issues);
  // Patterns that can never match are refused, naming the field and the nearest names (config/catalog-check.ts).
  const catalogNames: Catalog = {
    tools: Object.keys(tools),
    agents: [...Object.keys(raw.agents), ...Object.keys(parts.agents ?? {})],
    channels: ['cli', ...Object.keys(raw.channels ?? {}).filter((k) => k !== 'outbox')],
    unfetchedNamespaces: opts.connect ? [] : Object.keys(raw.mcp?.servers ?? {}),
  };
  checkPatterns(
    [
      ...Object.entries(raw.agents).flatMap(([name, cfg]): PatternUse[] => {
        const g = grantList(cfg.grants?.tools);
        const allowUnmatched = cfg.grants?.allowUnmatched;
        return [
          { path: `agents.${name}.grants.tools${Array.isArray(cfg.grants?.tools) ? '' : '.allow'}`, patterns: g.allow, kind: 'tool', allowUnmatched },
          { path: `agents.${name}.grants.tools.deny`, patterns: g.deny, kind: 'tool', allowUnmatched },
        ];
      }),
      ...(raw.policy?.rules ?? []).flatMap((rule, i): PatternUse[] => [
        ...(rule.agents ? [{ path: `policy.rules.${i}.agents`, patterns: rule.agents, kind: 'agent' as const, allowUnmatched: rule.allowUnmatched }] : []),
        ...('actions' in rule ? [{ path: `policy.rules.${i}.actions`, patterns: rule.actions, kind: 'action' as const, allowUnmatched: rule.allowUnmatched }] : []),
      ]),
    ],
    catalogNames,
    issues,
  );
  for (const [name, cfg] of Object.entries(raw.agents)) {
    const a = agents[name];
    if (!cfg.health || !a) continue;
    a.probe = adapters.probe(cfg.health, { kind: cfg.kind, dir, ...('url' in cfg && typeof cfg.url === 'string' ? { url: cfg.url } : {}) }, `agents.${name}.health`, issues);
  }
  // Checked on every load; run only where the server was connected (spine up, spine worker).
  const serverProbes: ServerProbe[] = [];
  for (const [server, cfg] of Object.entries(raw.mcp?.servers ?? {})) {
    if (!cfg.health) continue;
    const check = mcpChecks[server];
    const probe = adapters.probe(cfg.health, { kind: 'mcp', dir, ...(check ? { handshake: check } : {}) }, `mcp.servers.${server}.health`, issues);
    const tools = mcpTools[server];
    if (probe && check && tools) serverProbes.push({ key: `mcp:${server}`, feeds: tools.map((t) => `tool:${t}`), probe });
  }
  const agentNames = [...Object.keys(raw.agents), ...Object.keys(parts.agents ?? {})];
  const routing: RoutingConfig = { bindings: compileBindings(raw.bindings, agentNames, issues), sessions: compileSessions(raw.sessions, issues) };
  const gateway = compileGateway(raw.gateway, issues);
  const channels = compileChannels(raw.channels, issues);
  const schedules = compileSchedules(raw.schedules, issues, agentNames);
  const stuck = compileStuck(raw.health?.stuck, issues);
  const mesh = compileMesh(raw.mesh, agentNames, issues);
  const gates = compileGates(raw.validation, { agents: agentNames, tools: Object.keys(tools), contracts, agentOf: (n) => agents[n]?.agent }, issues);

  const audit = compileAuditSettings(raw.audit, dir, issues);
  const worker: WorkerOptions = { ...DEFAULT_WORKER, ...raw.worker };
  if (raw.worker?.heartbeatMs === undefined) worker.heartbeatMs = Math.max(50, Math.floor(worker.leaseMs / 3));
  if (worker.heartbeatMs >= worker.leaseMs) issues.push({ path: 'worker.heartbeatMs', message: 'must be shorter than worker.leaseMs' });

  if (issues.length > 0) throw new ConfigError(file, issues);
  return {
    file,
    dir,
    registry: createRegistry({ agents, tools, limits: { ...DEFAULT_LIMITS, ...raw.limits }, retry, contracts, policy: withCeilings(policy, heartbeatCeilings(schedules)), memory, gates: gates.gates, gatesVersion: gates.version, breakers: compileBreakers(raw.validation), stuck, mesh, serverProbes }),
    routing,
    gateway,
    channels,
    schedules,
    worker,
    durability: raw.store?.durability ?? 'strict',
    audit,
    raw,
    ...(opts.connect && raw.mcp ? { mcpTools } : {}),
    ...(warnings.length ? { warnings } : {}),
  };
}

/** Each heartbeat's maxCostUsd: a per-run ceiling on its own runs, beside the configured ones. */
function heartbeatCeilings(schedules: ScheduleSettings) {
  return schedules.flatMap((s) => (s.heartbeat?.maxCostUsd == null ? [] : [heartbeatCeiling(s.id, s.heartbeat.maxCostUsd)]));
}

/** A fallback names a configured agent, and no chain of fallbacks comes back to where it started. */
function checkFallbacks(agents: SpineConfigFile['agents'], issues: FieldIssue[]): void {
  for (const [name, cfg] of Object.entries(agents)) {
    if (cfg.fallback === undefined) continue;
    if (!(cfg.fallback in agents)) {
      issues.push({ path: `agents.${name}.fallback`, message: `unknown agent "${cfg.fallback}"` });
      continue;
    }
    const seen = new Set([name]);
    for (let next: string | undefined = cfg.fallback; next !== undefined; next = agents[next]?.fallback) {
      if (seen.has(next)) {
        issues.push({ path: `agents.${name}.fallback`, message: `fallbacks form a loop (${[...seen, next].join(' → ')})` });
        break;
      }
      seen.add(next);
    }
  }
}

/** Script arguments worth checking at load: a relative path, or a file name with a script's extension. */
const SCRIPT_ARG = /^\.{1,2}\/|\.(py|js|mjs|cjs|ts|mts|rb|sh|pl|php|r|lua|jar)$/i;

/** A command agent whose executable or script is missing fails at load, naming the field, not at its first turn. */
function checkCommand(command: string[], dir: string, path: string, issues: FieldIssue[]): void {
  const [exe, ...args] = command;
  if (!exe) return;
  if (exe.includes('/')) {
    if (!existsSync(exe)) issues.push({ path: `${path}.0`, message: `executable not found: ${exe}` });
  } else if (!onPath(exe)) {
    issues.push({ path: `${path}.0`, message: `executable "${exe}" is not on the PATH` });
  }
  args.forEach((arg, i) => {
    if (!arg.startsWith('-') && SCRIPT_ARG.test(arg) && !existsSync(resolve(dir, arg))) {
      issues.push({ path: `${path}.${i + 1}`, message: `file not found: ${resolve(dir, arg)}` });
    }
  });
}

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, name)));
}

function grantList(g: AllowDeny | undefined): { allow: string[]; deny: string[] } {
  if (g === undefined) return { allow: [], deny: [] };
  if (Array.isArray(g)) return { allow: g, deny: [] };
  return { allow: g.allow ?? [], deny: g.deny ?? [] };
}

function toCost(c: { usd?: number | undefined; tokens?: number | undefined } | undefined): Cost | null {
  if (!c) return null;
  return { micros: Math.round((c.usd ?? 0) * 1e6), tokens: c.tokens ?? 0 };
}

function readSchemaFile(dir: string, path: string, field: string, issues: FieldIssue[]): Json | undefined {
  const abs = isAbsolute(path) ? path : resolve(dir, path);
  try {
    return JSON.parse(readFileSync(abs, 'utf8')) as Json;
  } catch (err) {
    issues.push({ path: field, message: `cannot read a JSON Schema from ${abs}: ${err instanceof Error ? err.message : String(err)}` });
    return undefined;
  }
}

async function importExport(dir: string, modulePath: string, exportName: string | undefined, path: string, issues: FieldIssue[]): Promise<unknown> {
  const abs = isAbsolute(modulePath) ? modulePath : resolve(dir, modulePath);
  if (!existsSync(abs)) {
    issues.push({ path, message: `module not found: ${abs}` });
    return undefined;
  }
  const insecure = insecureFileReason(abs);
  if (insecure) {
    issues.push({ path, message: insecure });
    return undefined;
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  } catch (err) {
    issues.push({ path, message: `cannot load ${abs}: ${err instanceof Error ? err.message : String(err)}` });
    return undefined;
  }
  const name = exportName ?? 'default';
  if (!(name in mod)) {
    issues.push({ path: exportName ? path.replace(/\.module$/, '.export') : path, message: `module has no export "${name}"` });
    return undefined;
  }
  return mod[name];
}

/** A join policy the schema has checked (so it compiles). */
function compiledJoin(p: JoinPolicy): JoinSpec {
  const spec = compileJoin(p);
  if (typeof spec === 'string') throw new Error(`unreachable: ${spec}`);
  return spec;
}
