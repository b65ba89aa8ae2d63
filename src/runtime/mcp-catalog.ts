import type { CompiledConfig } from '../config/load.ts';
import { ToolError } from '../core/errors.ts';
import type { Registry, ToolSpec } from '../engine/options.ts';
import type { McpToolRecord } from '../store/mcp-tools.ts';
import type { Store } from '../store/store.ts';

/**
 * The MCP tool catalog in the store (docs/mcp.md, "The catalog in the store"). The
 * processes that run agents connect to the MCP servers and write what each lists;
 * the commands that do not connect (`spine policy explain`, `spine agents list`) read
 * it, so they know `everything.echo` without starting the server.
 */

/** Writes each connected server's tools (a config compiled with `connect`), replacing what the catalog held for it. */
export async function refreshMcpCatalog(store: Store, config: CompiledConfig, now: number): Promise<void> {
  for (const [server, names] of Object.entries(config.mcpTools ?? {})) {
    const tools = names.flatMap((name) => {
      const t = config.registry.tools.get(name);
      return t ? [{ name, description: t.description ?? null, inputSchema: t.inputSchema ?? null, sideEffect: t.sideEffect }] : [];
    });
    await store.mcpTools.replace(server, tools, now);
  }
}

export interface CatalogView {
  /** The config's registry with the catalogued tools of its configured servers added. */
  registry: Registry;
  /** Per configured server: when its tools were last listed, or null if never (no process has connected to it yet). */
  servers: Record<string, number | null>;
  tools: McpToolRecord[];
}

/**
 * The registry of a config compiled without connecting, completed from the catalog:
 * the tools of servers the config still names (and, with a `tools` list, only those).
 * They are there to be explained and listed; this process cannot call them.
 */
export async function withMcpCatalog(config: CompiledConfig, store: Store): Promise<CatalogView> {
  const configured = config.raw.mcp?.servers ?? {};
  const servers: Record<string, number | null> = Object.fromEntries(Object.keys(configured).map((s) => [s, null]));
  if (Object.keys(servers).length === 0) return { registry: config.registry, servers, tools: [] };
  const rows = (await store.mcpTools.list()).filter((r) => {
    const s = configured[r.server];
    return s !== undefined && (s.tools === undefined || s.tools.some((t) => r.name === `${r.server}.${t}`));
  });
  const tools = new Map<string, ToolSpec>(config.registry.tools);
  for (const r of rows) {
    servers[r.server] = Math.max(servers[r.server] ?? 0, r.refreshedAt);
    if (tools.has(r.name)) continue;
    tools.set(r.name, {
      name: r.name,
      run: () => {
        throw new ToolError(r.name, `MCP server "${r.server}" is not connected in this process (only spine up and spine worker connect)`);
      },
      ...(r.description === null ? {} : { description: r.description }),
      ...(r.inputSchema === null ? {} : { inputSchema: r.inputSchema }),
      input: null,
      output: null,
      sideEffect: r.sideEffect,
      cost: null,
    });
  }
  return { registry: { ...config.registry, tools }, servers, tools: rows };
}

/** A hint for an unknown tool whose namespace is a configured MCP server that the catalog does not know yet. */
export function uncataloguedHint(view: CatalogView, tool: string): string {
  const server = tool.includes('.') ? tool.slice(0, tool.indexOf('.')) : '';
  if (!(server in view.servers)) return '';
  const at = view.servers[server];
  return at === null || at === undefined
    ? `; MCP server "${server}" has not been catalogued yet: its tools are listed when spine up or spine worker connects to it`
    : `; the catalog of MCP server "${server}" (as of ${new Date(at).toISOString()}) has no such tool`;
}
