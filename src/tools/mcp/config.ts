import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import type { FieldIssue } from '../../core/errors.ts';
import type { ToolInit } from '../../engine/registry.ts';
import { httpUrl, secretValue, type SecretValue } from '../../config/fields.ts';
import { connectServer, mcpTools, type ServerTarget } from './clients.ts';

const NAMESPACE = /^[A-Za-z][A-Za-z0-9_-]*$/;

/** One MCP server: a command speaking MCP over stdio, or a Streamable HTTP endpoint. */
const serverSchema = z
  .strictObject({
    /** stdio: executable and arguments (no shell); a path starting with `.` is relative to the config file. */
    command: z.array(z.string().min(1)).min(1).optional(),
    /** stdio: extra environment (the child otherwise gets only HOME, PATH, USER, SHELL, TERM, LOGNAME). */
    env: z.record(z.string().min(1), secretValue).optional(),
    /** stdio: working directory (default: the config file's folder). */
    cwd: z.string().min(1).optional(),
    /** Streamable HTTP: the MCP endpoint. */
    url: httpUrl.optional(),
    /** Streamable HTTP: extra headers, e.g. `Authorization`. */
    headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/, 'a header name'), secretValue).optional(),
    /** Only these tools join the catalog (default: all the server lists). */
    tools: z.array(z.string().min(1)).optional(),
    /** Longest a tool call may take (default 60 000 ms); the task's cancel aborts it too. */
    timeoutMs: z.number().int().positive().optional(),
    /** Longest connecting and listing the tools may take (default 10 000 ms). */
    connectTimeoutMs: z.number().int().positive().optional(),
  })
  .superRefine((s, ctx) => {
    if ((s.command === undefined) === (s.url === undefined)) {
      ctx.addIssue({ code: 'custom', path: [], message: 'give either `command` (stdio) or `url` (Streamable HTTP)' });
    }
    if (s.url !== undefined) for (const k of ['env', 'cwd'] as const) if (s[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: 'only for stdio servers (`command`)' });
    if (s.command !== undefined && s.headers !== undefined) ctx.addIssue({ code: 'custom', path: ['headers'], message: 'only for HTTP servers (`url`)' });
  });

/** `mcp` in spine.config.json5: MCP servers whose tools join the catalog (docs/mcp.md). */
export const mcpSchema = z.strictObject({
  /** By namespace: the tools of `github` are `github.<tool>`. */
  servers: z.record(z.string().regex(NAMESPACE, 'namespaces start with a letter and use letters, digits, _ or -'), serverSchema).optional(),
});

export type McpConfig = z.infer<typeof mcpSchema>;
export type McpServerConfig = z.infer<typeof serverSchema>;

export const DEFAULT_CALL_TIMEOUT_MS = 60_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Connects to the configured MCP servers and returns their tools, named
 * `<namespace>.<tool>`. Called only by commands that run agents (`connect`).
 * A server that cannot be reached, or a secret env var that is unset, is a config
 * issue naming the server. Connections are kept (and reused by a config reload
 * with the same server settings) until `closeMcpClients()`.
 */
export async function loadMcpTools(cfg: McpConfig | undefined, ctx: { dir: string; issues: FieldIssue[] }): Promise<Record<string, ToolInit>> {
  const tools: Record<string, ToolInit> = {};
  const entries = Object.entries(cfg?.servers ?? {});
  const loaded = await Promise.all(
    entries.map(async ([namespace, server]) => {
      const path = `mcp.servers.${namespace}`;
      const target = toTarget(namespace, server, ctx.dir, path, ctx.issues);
      if (!target) return null;
      try {
        const conn = await connectServer(target);
        return await mcpTools(conn, target, path, ctx.issues);
      } catch (err) {
        ctx.issues.push({ path, message: `cannot reach the MCP server: ${err instanceof Error ? err.message : String(err)}` });
        return null;
      }
    }),
  );
  for (const set of loaded) if (set) Object.assign(tools, set);
  return tools;
}

function toTarget(namespace: string, s: McpServerConfig, dir: string, path: string, issues: FieldIssue[]): ServerTarget | null {
  const before = issues.length;
  const read = (v: SecretValue, field: string): string => {
    if (typeof v === 'string') return v;
    const value = process.env[v.env];
    if (value === undefined || value === '') issues.push({ path: `${path}.${field}.env`, message: `environment variable ${v.env} is not set` });
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
  return issues.length === before ? target : null;
}

export { closeMcpClients } from './clients.ts';
