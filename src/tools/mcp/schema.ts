import { z } from 'zod';
import type { FieldIssue } from '../../core/issues.ts';
import { healthProbeSchema, httpUrl, secretValue } from '../../config/fields.ts';

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
    /** A `handshake` probe the workers run on a schedule, feeding its tools' breakers (docs/health.md). */
    health: healthProbeSchema.optional(),
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

/** What loading the MCP servers' tools reports besides the tools (tools/mcp/config.ts). */
export interface McpLoadContext {
  dir: string;
  issues: FieldIssue[];
  warnings?: FieldIssue[];
  /** Filled with each connected server's health check, by namespace (its `health` probe runs it). */
  checks?: Record<string, (signal: AbortSignal) => Promise<string>>;
}
