-- The tamper-evident audit trail (docs/audit.md): every event is chained in its
-- stream (its task, its run, or a shared stream) and addressed by (stream, stream_seq);
-- signed checkpoints seal Merkle roots over committed events.

ALTER TABLE audit_events ADD COLUMN stream TEXT;
ALTER TABLE audit_events ADD COLUMN stream_seq INTEGER;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_stream_idx ON audit_events (stream, stream_seq);

-- The newest event of each stream; its row lock orders the writers of a shared stream.
CREATE TABLE audit_heads (
  stream TEXT PRIMARY KEY,
  stream_seq INTEGER NOT NULL,
  hash TEXT NOT NULL
);
INSERT INTO audit_heads (stream, stream_seq, hash) VALUES
  ('intake', 0, '0000000000000000000000000000000000000000000000000000000000000000'),
  ('approvals', 0, '0000000000000000000000000000000000000000000000000000000000000000'),
  ('config', 0, '0000000000000000000000000000000000000000000000000000000000000000'),
  ('system', 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Where the chain begins (events up to legacy_until predate it) and what was pruned.
CREATE TABLE audit_chain (
  id INTEGER PRIMARY KEY,
  legacy_until INTEGER NOT NULL,
  pruned_until INTEGER NOT NULL
);
INSERT INTO audit_chain (id, legacy_until, pruned_until) SELECT 1, COALESCE(MAX(seq), 0), 0 FROM audit_events;

-- After pruning: the last pruned event of each stream, where its chain resumes.
CREATE TABLE audit_anchors (
  stream TEXT PRIMARY KEY,
  stream_seq INTEGER NOT NULL,
  hash TEXT NOT NULL
);

-- Signed checkpoints: a Merkle root over the events in (from_seq, to_seq], chained.
CREATE TABLE audit_checkpoints (
  n INTEGER PRIMARY KEY,
  from_seq INTEGER NOT NULL,
  to_seq INTEGER NOT NULL,
  count INTEGER NOT NULL,
  root TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  at INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  signature TEXT NOT NULL,
  hash TEXT NOT NULL
);

-- The outcome of each `audit verify`, for `spine doctor`.
CREATE TABLE audit_verifications (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  status TEXT NOT NULL,
  events INTEGER NOT NULL,
  report TEXT NOT NULL
);
