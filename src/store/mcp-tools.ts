import type { Json } from '../core/types.ts';

/**
 * The catalog of MCP servers' tools (docs/mcp.md, "The catalog in the store"). Only
 * the processes that run agents connect to MCP servers; each refreshes its servers'
 * rows when it connects, so commands that do not connect (`spine policy explain`,
 * `spine agents list`) still know the tools.
 */
export interface McpToolRecord {
  /** The catalog name, `<server>.<tool>`. */
  name: string;
  /** The server's namespace (its key under `mcp.servers`). */
  server: string;
  description: string | null;
  inputSchema: Json | null;
  sideEffect: 'read' | 'write' | 'external';
  refreshedAt: number;
}

export interface McpToolStore {
  /** Replaces one server's tools with those it lists now, in one transaction. */
  replace(server: string, tools: Array<Omit<McpToolRecord, 'server' | 'refreshedAt'>>, now: number): Promise<void>;
  /** Every catalogued tool, by name. */
  list(): Promise<McpToolRecord[]>;
}
