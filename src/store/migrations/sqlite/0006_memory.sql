-- Shared memory (docs/memory.md): facts as append-only chains of versions, the
-- merge queue of conflicting writes, and a full-text index over the versions' text.

-- The head of each fact: its newest version number (live or tombstone). A
-- compare-and-set is one UPDATE of this row on both backends.
CREATE TABLE memory_facts (
  tenant TEXT NOT NULL,
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  version INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, scope, key)
);

-- Every version ever written. valid_to is set when a newer version replaces it.
CREATE TABLE memory_versions (
  id TEXT PRIMARY KEY,
  seq INTEGER,
  tenant TEXT NOT NULL,
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  version INTEGER NOT NULL,
  supersedes INTEGER,
  value TEXT NOT NULL,
  text TEXT,
  valid_from INTEGER NOT NULL,
  valid_to INTEGER,
  written_agent TEXT,
  written_run TEXT,
  written_task TEXT,
  written_turn INTEGER,
  written_actor TEXT NOT NULL,
  sources TEXT NOT NULL,
  trust TEXT NOT NULL,
  expires_at INTEGER,
  tombstone INTEGER NOT NULL DEFAULT 0,
  UNIQUE (tenant, scope, key, version)
);
CREATE INDEX memory_versions_current ON memory_versions (tenant, scope, key) WHERE valid_to IS NULL;
CREATE INDEX memory_versions_run ON memory_versions (written_run) WHERE valid_to IS NULL;
CREATE INDEX memory_versions_agent ON memory_versions (tenant, written_agent) WHERE valid_to IS NULL;
CREATE INDEX memory_versions_expiry ON memory_versions (expires_at) WHERE valid_to IS NULL;
-- Finds a version by its FTS rowid (seq) and covers what search filters on (tenant, grants,
-- validity), so ranking reads whole rows for the top k only.
CREATE INDEX memory_versions_search ON memory_versions (seq, tenant, scope, valid_from, valid_to, tombstone, expires_at);

-- What each version was derived from, for forgetting what a bad source caused.
CREATE TABLE memory_sources (
  version_id TEXT NOT NULL,
  source TEXT NOT NULL,
  PRIMARY KEY (version_id, source)
);
CREATE INDEX memory_sources_source ON memory_sources (source);

-- The merge queue: compare-and-set writes that met a newer version.
CREATE TABLE memory_conflicts (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  expected_version INTEGER NOT NULL,
  current_version INTEGER NOT NULL,
  proposed TEXT NOT NULL,
  proposed_text TEXT,
  strategy TEXT NOT NULL,
  state TEXT NOT NULL,
  resolved_version INTEGER,
  resolved_by TEXT,
  written_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  resolved_at INTEGER
);
CREATE INDEX memory_conflicts_state ON memory_conflicts (tenant, state, created_at);

-- Lexical search: FTS5 over the versions' text (bm25), kept in step by the store's
-- writes (rowid = memory_versions.seq, numbered under the write lock; null on PostgreSQL,
-- which uses a GIN index instead).
CREATE VIRTUAL TABLE memory_fts USING fts5(text, content='', contentless_delete=1, tokenize='unicode61');
