import { z } from 'zod';
import type { FieldIssue } from '../../core/errors.ts';
import type { ToolInit } from '../../engine/registry.ts';

/** `mcp` in spine.config.json5: MCP servers whose tools join the catalog. */
export const mcpSchema = z.strictObject({});

export type McpConfig = z.infer<typeof mcpSchema>;

/**
 * Connects to the configured MCP servers and returns their tools, named
 * `<namespace>.<tool>`. Called only by commands that run agents (`connect`).
 */
export async function loadMcpTools(_cfg: McpConfig | undefined, _ctx: { dir: string; issues: FieldIssue[] }): Promise<Record<string, ToolInit>> {
  return {};
}
