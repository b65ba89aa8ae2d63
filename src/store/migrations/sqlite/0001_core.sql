-- Runs, tasks, turns, the effects ledger, the audit log and the worker registry.
-- Times are integer milliseconds since the epoch; JSON columns hold JSON text.

CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  idempotency_key TEXT UNIQUE,
  agent TEXT NOT NULL,
  state TEXT NOT NULL,
  input TEXT NOT NULL,
  output TEXT,
  error TEXT,
  root_task_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER
);
CREATE INDEX runs_state_idx ON runs (state, id);
CREATE INDEX runs_agent_idx ON runs (agent, id);

CREATE TABLE tasks (
  id TEXT PRIMARY KEY,
  run_id TEXT NOT NULL REFERENCES runs (id),
  parent_id TEXT REFERENCES tasks (id),
  parent_turn INTEGER,
  parent_action INTEGER,
  depth INTEGER NOT NULL,
  agent TEXT NOT NULL,
  state TEXT NOT NULL,
  input TEXT NOT NULL,
  output TEXT,
  error TEXT,
  turns INTEGER NOT NULL DEFAULT 0,
  waiting_on INTEGER NOT NULL DEFAULT 0,
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  reclaims INTEGER NOT NULL DEFAULT 0,
  lease_no INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_expires_at INTEGER,
  run_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER
);
-- The claim query walks this partial index only.
CREATE INDEX tasks_ready_idx ON tasks (run_at, id) WHERE state IN ('queued', 'retry-scheduled');
CREATE INDEX tasks_leased_idx ON tasks (lease_expires_at) WHERE state IN ('leased', 'running');
CREATE INDEX tasks_owner_idx ON tasks (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX tasks_run_idx ON tasks (run_id);
CREATE INDEX tasks_parent_idx ON tasks (parent_id, parent_turn);
CREATE INDEX tasks_state_idx ON tasks (state, id);

CREATE TABLE turns (
  task_id TEXT NOT NULL REFERENCES tasks (id),
  n INTEGER NOT NULL,
  state TEXT NOT NULL,
  actions TEXT NOT NULL,
  results TEXT,
  output TEXT,
  usage TEXT,
  decided_at INTEGER NOT NULL,
  committed_at INTEGER,
  PRIMARY KEY (task_id, n)
);

CREATE TABLE effects (
  key TEXT PRIMARY KEY,
  run_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  turn INTEGER NOT NULL,
  action INTEGER NOT NULL,
  tool TEXT NOT NULL,
  input_digest TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  result TEXT,
  error TEXT,
  started_at INTEGER NOT NULL,
  completed_at INTEGER
);
CREATE INDEX effects_task_idx ON effects (task_id, turn);
CREATE INDEX effects_run_idx ON effects (run_id);

CREATE TABLE audit_events (
  seq INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  kind TEXT NOT NULL,
  run_id TEXT,
  task_id TEXT,
  agent TEXT,
  actor TEXT,
  digest TEXT,
  data TEXT
);
CREATE INDEX audit_run_idx ON audit_events (run_id, seq);

CREATE TABLE workers (
  id TEXT PRIMARY KEY,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL,
  stopped_at INTEGER
);
