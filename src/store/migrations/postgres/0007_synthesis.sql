-- PostgreSQL dialect of ../sqlite/0007_synthesis.sql: the same tables, columns and indexes.

ALTER TABLE tasks ADD COLUMN join_mode TEXT;
ALTER TABLE tasks ADD COLUMN join_need BIGINT;
ALTER TABLE tasks ADD COLUMN join_on_failure TEXT;
ALTER TABLE tasks ADD COLUMN join_deadline_at BIGINT;
ALTER TABLE tasks ADD COLUMN join_ok BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN join_failed BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tasks_join_deadline_idx ON tasks (join_deadline_at) WHERE join_deadline_at IS NOT NULL;

CREATE TABLE briefs (
  id TEXT PRIMARY KEY,
  run_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  turn BIGINT NOT NULL,
  agent TEXT NOT NULL,
  state TEXT NOT NULL,
  digest TEXT,
  body TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (task_id, turn)
);
CREATE INDEX briefs_run_idx ON briefs (run_id, id);
