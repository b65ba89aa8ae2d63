import type { Json } from '../../core/types.ts';
import type { McpToolRecord, McpToolStore } from '../mcp-tools.ts';
import type { SqlBackend } from './backend.ts';

interface McpToolRow {
  name: string;
  server: string;
  description: string | null;
  input_schema: string | null;
  side_effect: string;
  refreshed_at: number | string;
}

function toRecord(r: McpToolRow): McpToolRecord {
  return {
    name: r.name,
    server: r.server,
    description: r.description,
    inputSchema: r.input_schema === null ? null : (JSON.parse(r.input_schema) as Json),
    sideEffect: r.side_effect as McpToolRecord['sideEffect'],
    refreshedAt: Number(r.refreshed_at),
  };
}

export function sqlMcpToolStore(db: SqlBackend): McpToolStore {
  return {
    async replace(server, tools, now) {
      await db.transaction(async (tx) => {
        await tx.run('DELETE FROM mcp_tools WHERE server = ?', [server]);
        for (const t of tools) {
          // A name another server held (a renamed namespace) moves to this one.
          await tx.run(
            `INSERT INTO mcp_tools (name, server, description, input_schema, side_effect, refreshed_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET server = excluded.server, description = excluded.description, input_schema = excluded.input_schema,
               side_effect = excluded.side_effect, refreshed_at = excluded.refreshed_at`,
            [t.name, server, t.description, t.inputSchema === null ? null : JSON.stringify(t.inputSchema), t.sideEffect, now],
          );
        }
      });
    },
    async list() {
      return (await db.read.all<McpToolRow>('SELECT * FROM mcp_tools ORDER BY name')).map(toRecord);
    },
  };
}
