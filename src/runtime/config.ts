import { CommandAgent } from '../agents/command-agent.ts';
import { FunctionAgent } from '../agents/function-agent.ts';
import { buildProbe } from '../agents/probes.ts';
import * as load from '../config/load.ts';
import type { CompiledConfig, ConfigAdapters, ProgrammaticParts } from '../config/load.ts';
import type { SpineConfigFile } from '../config/schema.ts';

/**
 * The agent kinds and tool sources a config can use, wired here and nowhere else.
 * The HTTP, LLM and A2A kinds and MCP tools load their modules (and SDKs) only when a
 * config has such an agent or server.
 */
export const ADAPTERS: ConfigAdapters = {
  function: (fn) => new FunctionAgent(fn),
  command: (opts) => new CommandAgent(opts),
  probe: buildProbe,
  http: async (cfg, ctx) => (await import('../agents/http/config.ts')).createHttpAgent(cfg, ctx),
  llm: async (cfg, ctx) => (await import('../agents/llm/config.ts')).createLlmAgent(cfg, ctx),
  a2a: async (cfg, ctx) => (await import('../agents/a2a/config.ts')).createA2aAgent(cfg, ctx),
  mcpTools: async (cfg, ctx) => {
    mcpLoaded = true;
    return (await import('../tools/mcp/config.ts')).loadMcpTools(cfg, ctx);
  },
};

/** Whether any config compiled here had MCP servers: only then is there a client to close (or an SDK to load). */
let mcpLoaded = false;

/** Loads, validates and compiles a config file with Spine's adapters (src/config/load.ts). */
export function loadConfig(file: string, parts: ProgrammaticParts = {}, opts: { connect?: boolean } = {}): Promise<CompiledConfig> {
  return load.loadConfig(file, parts, { ...opts, adapters: ADAPTERS });
}

/** Compiles an already parsed config with Spine's adapters. */
export function compileConfig(file: string, raw: SpineConfigFile, parts: ProgrammaticParts = {}, opts: { connect?: boolean } = {}): Promise<CompiledConfig> {
  return load.compileConfig(file, raw, parts, { ...opts, adapters: ADAPTERS });
}

/** Closes the MCP connections that compiling with `connect` opened (reloads reuse them). */
export async function closeMcpClients(): Promise<void> {
  if (!mcpLoaded) return;
  const { closeMcpClients } = await import('../tools/mcp/clients.ts');
  await closeMcpClients();
}
