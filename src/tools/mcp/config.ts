import { isAbsolute, resolve } from 'node:path';
import type { FieldIssue } from '../../core/errors.ts';
import type { ToolInit } from '../../engine/registry.ts';
import type { SecretValue } from '../../config/fields.ts';
import { connectServer, mcpTools, type ServerTarget } from './clients.ts';
import type { McpConfig, McpLoadContext, McpServerConfig } from './schema.ts';

export { mcpSchema, type McpConfig, type McpLoadContext, type McpServerConfig } from './schema.ts';

export const DEFAULT_CALL_TIMEOUT_MS = 60_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Connects to the configured MCP servers and returns their tools, named
 * `<namespace>.<tool>`. Called only by commands that run agents (`connect`).
 * A server that cannot be reached is a config issue naming the server. One whose
 * `{env}` secret is unset is left out with a warning (`ctx.warnings`), so only its
 * tools are missing. Connections are kept (and reused by a config reload
 * with the same server settings) until `closeMcpClients()`. Each connected server's
 * health check (a ping on its connection) goes into `ctx.checks` by namespace.
 */
export async function loadMcpTools(cfg: McpConfig | undefined, ctx: McpLoadContext): Promise<Record<string, ToolInit>> {
  const tools: Record<string, ToolInit> = {};
  const entries = Object.entries(cfg?.servers ?? {});
  const loaded = await Promise.all(
    entries.map(async ([namespace, server]) => {
      const path = `mcp.servers.${namespace}`;
      const unset: FieldIssue[] = [];
      const target = toTarget(namespace, server, ctx.dir, path, ctx.issues, unset);
      if (unset.length > 0) {
        // The secret is needed to connect: this server is left out (its tools are unknown here); the rest start.
        (ctx.warnings ?? ctx.issues).push(...unset.map((u) => ({ path: u.path, message: `${u.message}: MCP server "${namespace}" is not connected, its tools are unavailable` })));
        return null;
      }
      if (!target) return null;
      try {
        const conn = await connectServer(target);
        const tools = await mcpTools(conn, target, path, ctx.issues);
        if (ctx.checks) ctx.checks[namespace] = (signal) => conn.ping(signal);
        return tools;
      } catch (err) {
        ctx.issues.push({ path, message: `cannot reach the MCP server: ${err instanceof Error ? err.message : String(err)}` });
        return null;
      }
    }),
  );
  for (const set of loaded) if (set) Object.assign(tools, set);
  return tools;
}

function toTarget(namespace: string, s: McpServerConfig, dir: string, path: string, issues: FieldIssue[], unset: FieldIssue[]): ServerTarget | null {
  const before = issues.length;
  const read = (v: SecretValue, field: string): string => {
    if (typeof v === 'string') return v;
    const value = process.env[v.env];
    if (value === undefined || value === '') unset.push({ path: `${path}.${field}.env`, message: `environment variable ${v.env} is not set` });
    return value ?? '';
  };
  const common = {
    namespace,
    only: s.tools ?? null,
    timeoutMs: s.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
    connectTimeoutMs: s.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
  };
  let target: ServerTarget;
  if (s.command) {
    const [exe, ...args] = s.command;
    const env = Object.fromEntries(Object.entries(s.env ?? {}).map(([k, v]) => [k, read(v, `env.${k}`)]));
    const cwd = s.cwd === undefined ? dir : isAbsolute(s.cwd) ? s.cwd : resolve(dir, s.cwd);
    target = { ...common, kind: 'stdio', command: exe!.startsWith('.') ? resolve(dir, exe!) : exe!, args, env, cwd };
  } else {
    const headers = Object.fromEntries(Object.entries(s.headers ?? {}).map(([k, v]) => [k, read(v, `headers.${k}`)]));
    target = { ...common, kind: 'http', url: s.url!, headers };
  }
  return issues.length === before && unset.length === 0 ? target : null;
}

export { closeMcpClients } from './clients.ts';
