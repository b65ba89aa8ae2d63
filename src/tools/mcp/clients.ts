import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { ToolError, type FieldIssue } from '../../core/errors.ts';
import type { Json } from '../../core/types.ts';
import type { ToolInit } from '../../engine/registry.ts';
import { errorText, resultToJson, type ToolResultLike } from './results.ts';

interface TargetCommon {
  namespace: string;
  /** Tool names to import; null: all. */
  only: string[] | null;
  timeoutMs: number;
  connectTimeoutMs: number;
}

/** A resolved server setting (secrets read): what a connection is made from, and its pool key. */
export type ServerTarget = TargetCommon &
  ({ kind: 'stdio'; command: string; args: string[]; env: Record<string, string>; cwd: string } | { kind: 'http'; url: string; headers: Record<string, string> });

const CLIENT_INFO = { name: 'spine', version: '0.1.0' };
const STDERR_TAIL = 2000;
/** The `_meta` key carrying the effect's idempotency key to servers that care. */
export const IDEMPOTENCY_META = 'dev.spine/idempotencyKey';

/**
 * One MCP server connection. A connection that drops (the server process died, the
 * HTTP session ended) is made again on the next call.
 */
export class McpConnection {
  readonly target: ServerTarget;
  private client: Client | null = null;
  private connecting: Promise<Client> | null = null;
  private stderrTail = '';
  private closed = false;

  constructor(target: ServerTarget) {
    this.target = target;
  }

  async get(): Promise<Client> {
    if (this.closed) throw new Error('the MCP connection is closed');
    if (this.client) return this.client;
    this.connecting ??= this.connect().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async connect(): Promise<Client> {
    const t = this.target;
    let transport: Transport;
    // The tail describes this attempt: a server started again (a probe, the next call) gets a fresh one.
    this.stderrTail = '';
    if (t.kind === 'stdio') {
      const stdio = new StdioClientTransport({ command: t.command, args: t.args, env: t.env, cwd: t.cwd, stderr: 'pipe' });
      stdio.stderr?.on('data', (chunk: Buffer) => (this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL)));
      transport = stdio;
    } else {
      transport = new StreamableHTTPClientTransport(new URL(t.url), { requestInit: { headers: t.headers } });
    }
    const client = new Client(CLIENT_INFO);
    client.onclose = () => {
      if (this.client === client) this.client = null;
    };
    // Transport errors surface on the request that meets them; nothing to do here.
    client.onerror = () => {};
    try {
      await client.connect(transport, { timeout: t.connectTimeoutMs });
    } catch (err) {
      await client.close().catch(() => {});
      const tail = this.stderrTail.trim();
      throw new ConnectFailed(`${describe(t)}: ${err instanceof Error ? err.message : String(err)}`, tail, err);
    }
    this.client = client;
    return client;
  }

  /**
   * Runs `fn` on the live client. A Streamable HTTP server answers 404 to a session id
   * it no longer knows (it restarted, or expired the session); the transport spec says
   * to start a new session with `initialize` then, so that happens once, and the call
   * is made again on the new session. A server that went away also closes the
   * keep-alive connection the next request was sent on, before answering it: that is
   * the same restart, and the same single retry (the call carries its idempotency key).
   */
  async call<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.get();
    try {
      return await fn(client);
    } catch (err) {
      if (this.target.kind !== 'http' || !serverRestarted(err)) throw err;
      if (this.client === client) this.client = null;
      await client.close().catch(() => {});
      return fn(await this.get());
    }
  }

  /**
   * The `handshake` health probe's check (docs/health.md): an MCP `ping` on the live
   * connection, the cheapest request that proves the server answers. A connection that
   * dropped is made again first (spawn and `initialize`, or a new HTTP session), as the
   * next tool call would, so a server that cannot start fails the check.
   */
  async ping(signal: AbortSignal): Promise<string> {
    const before = this.client;
    try {
      await this.call((client) => client.ping({ signal, timeout: this.target.connectTimeoutMs }));
    } catch (err) {
      // The result is stored and shown: the server's stderr (it may print anything, secrets too) stays out.
      throw err instanceof ConnectFailed ? new Error(`cannot start or reach it: ${err.brief}`) : err;
    }
    return before !== null && this.client === before ? 'ping' : 'initialize, ping';
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = this.client ?? (await this.connecting?.catch(() => null)) ?? null;
    this.client = null;
    await c?.close().catch(() => {});
  }
}

/** A failed connect: the message ends with the server's stderr (for the operator at start-up); `brief` is without it. */
class ConnectFailed extends Error {
  readonly brief: string;
  constructor(brief: string, stderr: string, cause: unknown) {
    super(stderr ? `${brief}; stderr: ${stderr}` : brief, { cause });
    this.brief = brief;
  }
}

function serverRestarted(err: unknown): boolean {
  if (err instanceof StreamableHTTPError) return err.code === 404;
  // undici: the server closed the pooled connection without an answer.
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  return err instanceof TypeError && (cause?.code === 'UND_ERR_SOCKET' || cause?.code === 'ECONNRESET');
}

function describe(t: ServerTarget): string {
  if (t.kind === 'stdio') return [t.command, ...t.args].join(' ');
  // A URL's credentials or query (an API key, say) stay out of messages, which are stored and shown.
  const u = new URL(t.url);
  return `${u.origin}${u.pathname}`;
}

const pool = new Map<string, McpConnection>();

/** A live connection for these settings: an existing one (e.g. across a config reload) or a new one. */
export async function connectServer(target: ServerTarget): Promise<McpConnection> {
  const key = JSON.stringify(target);
  let conn = pool.get(key);
  if (!conn) {
    conn = new McpConnection(target);
    pool.set(key, conn);
  }
  try {
    await conn.get();
  } catch (err) {
    pool.delete(key);
    await conn.close();
    throw err;
  }
  return conn;
}

/** Closes every MCP connection (stdio servers are ended). For shutdown, and for tests. */
export async function closeMcpClients(): Promise<void> {
  const all = [...pool.values()];
  pool.clear();
  await Promise.all(all.map((c) => c.close()));
}

/** Lists the server's tools and turns each into a catalog entry `<namespace>.<tool>`. */
export async function mcpTools(conn: McpConnection, target: ServerTarget, path: string, issues: FieldIssue[]): Promise<Record<string, ToolInit>> {
  const listed: Tool[] = [];
  let cursor: string | undefined;
  do {
    const page = await conn.call((client) => client.listTools(cursor === undefined ? {} : { cursor }, { timeout: target.connectTimeoutMs }));
    listed.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);

  const out: Record<string, ToolInit> = {};
  const names = new Set(listed.map((t) => t.name));
  for (const wanted of target.only ?? []) {
    if (!names.has(wanted)) issues.push({ path: `${path}.tools`, message: `the server has no tool "${wanted}" (it lists: ${[...names].join(', ') || 'none'})` });
  }
  for (const tool of listed) {
    if (target.only && !target.only.includes(tool.name)) continue;
    const local = catalogName(target.namespace, tool.name);
    if (!local) {
      issues.push({ path, message: `tool "${tool.name}" has a name Spine cannot put in its catalog` });
      continue;
    }
    if (local in out) {
      issues.push({ path, message: `tools "${tool.name}" and another both map to ${local}` });
      continue;
    }
    const description = [tool.title, tool.description].filter(Boolean).join(': ');
    out[local] = {
      run: callTool(conn, target, local, tool.name),
      ...(description ? { description } : {}),
      inputSchema: tool.inputSchema as unknown as Json,
      sideEffect: tool.annotations?.readOnlyHint ? 'read' : tool.annotations?.openWorldHint === false ? 'write' : 'external',
    };
  }
  return out;
}

/** `<namespace>.<tool>`, with characters the catalog does not allow replaced by `_`; null if it cannot be made valid. */
export function catalogName(namespace: string, tool: string): string | null {
  const cleaned = tool.replace(/[^A-Za-z0-9_.-]/g, '_');
  const name = `${namespace}.${cleaned}`;
  return /^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+$/.test(name) ? name : null;
}

function callTool(conn: McpConnection, target: ServerTarget, local: string, remote: string): ToolInit['run'] {
  return async (input, ctx) => {
    if (input !== null && (typeof input !== 'object' || Array.isArray(input))) {
      throw new ToolError(local, `MCP tools take an object of arguments (or null), not ${Array.isArray(input) ? 'an array' : typeof input}`);
    }
    let result: ToolResultLike;
    try {
      result = (await conn.call((client) =>
        client.callTool({ name: remote, arguments: input ?? {}, _meta: { [IDEMPOTENCY_META]: ctx.idempotencyKey } }, undefined, {
          signal: ctx.signal,
          timeout: target.timeoutMs,
        }),
      )) as ToolResultLike;
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason instanceof Error ? ctx.signal.reason : err;
      throw new ToolError(local, `MCP call to ${describe(target)} failed: ${err instanceof Error ? err.message : String(err)}`, { retryable: true, cause: err });
    }
    if (result.isError) throw new ToolError(local, errorText(result));
    return resultToJson(result);
  };
}
