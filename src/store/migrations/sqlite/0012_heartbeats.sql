-- Heartbeats (docs/schedules.md): where a run came from, and a heartbeat schedule's
-- state. runs.origin is `schedule:<id>` or `heartbeat:<id>` (null: any other door), so
-- policy and memory can tell a run a schedule started. On schedules: the activity
-- watermark (hb_since), the last fire's run still to be judged (hb_run), the streaks of
-- no-op and identical runs (hb_noops, hb_identical, hb_digest), idle fires skipped
-- (hb_skipped, hb_skipped_at), and a pause that only `spine schedules resume` lifts.

ALTER TABLE runs ADD COLUMN origin TEXT;
-- A heartbeat's activity look-up reads only what is newer than its last fire.
CREATE INDEX runs_agent_created_idx ON runs (agent, created_at);
CREATE INDEX memory_versions_written_idx ON memory_versions (tenant, valid_from);

ALTER TABLE schedules ADD COLUMN hb_since INTEGER;
ALTER TABLE schedules ADD COLUMN hb_run TEXT;
ALTER TABLE schedules ADD COLUMN hb_noops INTEGER NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN hb_identical INTEGER NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN hb_digest TEXT;
ALTER TABLE schedules ADD COLUMN hb_skipped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN hb_skipped_at INTEGER;
ALTER TABLE schedules ADD COLUMN paused_at INTEGER;
ALTER TABLE schedules ADD COLUMN pause_reason TEXT;
