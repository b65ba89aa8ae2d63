-- Synthesis: the join policy of a parent waiting on a batch of handoffs (its lanes),
-- and briefs (the synthesised result of a join: parts with provenance, conflicts with
-- their resolution, failed lanes, a digest).

ALTER TABLE tasks ADD COLUMN join_mode TEXT;
ALTER TABLE tasks ADD COLUMN join_need INTEGER;
ALTER TABLE tasks ADD COLUMN join_on_failure TEXT;
ALTER TABLE tasks ADD COLUMN join_deadline_at INTEGER;
ALTER TABLE tasks ADD COLUMN join_ok INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN join_failed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_join_deadline_idx ON tasks (join_deadline_at) WHERE join_deadline_at IS NOT NULL;

CREATE TABLE briefs (
  id TEXT PRIMARY KEY,
  run_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  turn INTEGER NOT NULL,
  agent TEXT NOT NULL,
  state TEXT NOT NULL,
  digest TEXT,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (task_id, turn)
);
CREATE INDEX briefs_run_idx ON briefs (run_id, id);
