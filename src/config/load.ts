import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import JSON5 from 'json5';
import type { z } from 'zod';
import type { AgentFunction, ToolDefinition, ToolFunction } from '../agents/agent.ts';
import { CommandAgent } from '../agents/command-agent.ts';
import { FunctionAgent } from '../agents/function-agent.ts';
import { ConfigError, type FieldIssue } from '../core/errors.ts';
import {
  DEFAULT_LIMITS,
  DEFAULT_RETRY,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_WORKER,
  type AgentSpec,
  type Registry,
  type RetryPolicy,
  type WorkerOptions,
} from '../engine/options.ts';
import type { Durability } from '../store/store.ts';
import { configSchema, type SpineConfigFile } from './schema.ts';

export const DEFAULT_CONFIG_FILE = 'spine.config.json5';

/** A config file compiled once into the checked form the engine runs with. */
export interface CompiledConfig {
  file: string;
  dir: string;
  registry: Registry;
  worker: WorkerOptions;
  durability: Durability;
  raw: SpineConfigFile;
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

export function zodIssues(error: { issues: readonly z.core.$ZodIssue[] }, prefix: PropertyKey[] = []): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const issue of error.issues) {
    const segments = [...prefix, ...issue.path];
    const path = segments.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: path ? `${path}.${key}` : key, message: 'unknown setting' });
    } else if (issue.code === 'invalid_key') {
      // A record key that fails its pattern: report the key's own message.
      out.push(...zodIssues({ issues: issue.issues }, segments));
    } else if (issue.code === 'invalid_type' && / received undefined$/.test(issue.message)) {
      out.push({ path, message: `required (${issue.expected})` });
    } else {
      out.push({ path, message: issue.message });
    }
  }
  return out;
}

/** Loads, validates and compiles a config: modules are imported and every reference checked. */
export async function loadConfig(file: string, parts: ProgrammaticParts = {}): Promise<CompiledConfig> {
  const abs = resolve(file);
  const raw = readConfigFile(abs);
  return compileConfig(abs, raw, parts);
}

export async function compileConfig(file: string, raw: SpineConfigFile, parts: ProgrammaticParts = {}): Promise<CompiledConfig> {
  const dir = dirname(file);
  const issues: FieldIssue[] = [];
  const retry: RetryPolicy = { ...DEFAULT_RETRY, ...raw.retry };
  if (retry.maxMs < retry.initialMs) issues.push({ path: 'retry.maxMs', message: 'must be at least retry.initialMs' });

  const agents = new Map<string, AgentSpec>();
  for (const [name, cfg] of Object.entries(raw.agents)) {
    const path = `agents.${name}`;
    const agentRetry = { ...retry, ...cfg.retry };
    const common = { name, timeoutMs: cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS, retry: agentRetry };
    if (cfg.kind === 'function') {
      const fn = await importExport(dir, cfg.module, cfg.export, `${path}.module`, issues);
      if (fn !== undefined) {
        if (typeof fn === 'function') agents.set(name, { ...common, agent: new FunctionAgent(fn as AgentFunction) });
        else issues.push({ path: `${path}.${cfg.export ? 'export' : 'module'}`, message: `export "${cfg.export ?? 'default'}" is not a function` });
      }
    } else {
      const [exe, ...args] = cfg.command;
      const command = [exe!.startsWith('.') ? resolve(dir, exe!) : exe!, ...args];
      agents.set(name, { ...common, agent: new CommandAgent({ name, command, cwd: dir, ...(cfg.env ? { env: cfg.env } : {}) }) });
    }
  }
  for (const [name, fn] of Object.entries(parts.agents ?? {})) {
    if (agents.has(name)) issues.push({ path: `agents.${name}`, message: 'defined both in the config file and in code' });
    agents.set(name, { name, timeoutMs: DEFAULT_TIMEOUT_MS, retry, agent: new FunctionAgent(fn) });
  }
  if (Object.keys(raw.agents).length === 0 && Object.keys(parts.agents ?? {}).length === 0) {
    issues.push({ path: 'agents', message: 'at least one agent is required' });
  }

  const tools = new Map<string, ToolDefinition>();
  for (const [name, cfg] of Object.entries(raw.tools ?? {})) {
    const fn = await importExport(dir, cfg.module, cfg.export, `tools.${name}.module`, issues);
    if (fn === undefined) continue;
    if (typeof fn !== 'function') {
      issues.push({ path: `tools.${name}.${cfg.export ? 'export' : 'module'}`, message: `export "${cfg.export ?? 'default'}" is not a function` });
      continue;
    }
    tools.set(name, { name, run: fn as ToolFunction, ...(cfg.description ? { description: cfg.description } : {}) });
  }
  for (const [name, fn] of Object.entries(parts.tools ?? {})) tools.set(name, { name, run: fn });

  const worker: WorkerOptions = { ...DEFAULT_WORKER, ...raw.worker };
  if (raw.worker?.heartbeatMs === undefined) worker.heartbeatMs = Math.max(50, Math.floor(worker.leaseMs / 3));
  if (worker.heartbeatMs >= worker.leaseMs) issues.push({ path: 'worker.heartbeatMs', message: 'must be shorter than worker.leaseMs' });

  if (issues.length > 0) throw new ConfigError(file, issues);
  return {
    file,
    dir,
    registry: { agents, tools, limits: { ...DEFAULT_LIMITS, ...raw.limits }, retry },
    worker,
    durability: raw.store?.durability ?? 'strict',
    raw,
  };
}

async function importExport(dir: string, modulePath: string, exportName: string | undefined, path: string, issues: FieldIssue[]): Promise<unknown> {
  const abs = isAbsolute(modulePath) ? modulePath : resolve(dir, modulePath);
  if (!existsSync(abs)) {
    issues.push({ path, message: `module not found: ${abs}` });
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
