import type { Json } from '../../core/types.ts';

/** A content block of an MCP tool result, as far as Spine needs to know it. */
interface ContentBlock {
  type: string;
  text?: string;
  [key: string]: unknown;
}

export interface ToolResultLike {
  content?: ContentBlock[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

/**
 * An MCP tool result as the JSON value of the action (docs/mcp.md):
 * `structuredContent` when the server sent it; else the text of a result that is one
 * text block; else `{content: [...]}` with every block as sent (images keep their
 * base64 `data` and `mimeType`).
 */
export function resultToJson(result: ToolResultLike): Json {
  if (result.structuredContent !== undefined) return toJson(result.structuredContent);
  const content = result.content ?? [];
  if (content.length === 1 && content[0]!.type === 'text' && typeof content[0]!.text === 'string') return content[0]!.text;
  return { content: toJson(content) };
}

/** The message of a failed tool call: its text blocks, or a short description of the rest. */
export function errorText(result: ToolResultLike): string {
  const texts = (result.content ?? []).filter((b) => b.type === 'text' && typeof b.text === 'string').map((b) => b.text!);
  if (texts.length > 0) return texts.join('\n');
  if (result.structuredContent !== undefined) return JSON.stringify(result.structuredContent);
  return 'the tool reported an error without a message';
}

function toJson(v: unknown): Json {
  return JSON.parse(JSON.stringify(v ?? null)) as Json;
}
