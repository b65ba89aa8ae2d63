-- Interop: the catalog of MCP servers' tools, refreshed by the processes that connect
-- to them and read by the ones that do not (`spine policy explain`, `spine agents list`);
-- and reservations by run, for a run's reserved and settled spend (`runs show`).

CREATE TABLE mcp_tools (
  name TEXT PRIMARY KEY,
  server TEXT NOT NULL,
  description TEXT,
  input_schema TEXT,
  side_effect TEXT NOT NULL,
  refreshed_at INTEGER NOT NULL
);
CREATE INDEX mcp_tools_server_idx ON mcp_tools (server);

CREATE INDEX reservations_run_idx ON reservations (run_id);
