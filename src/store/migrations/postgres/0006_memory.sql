-- PostgreSQL dialect of ../sqlite/0006_memory.sql: the same tables, columns and indexes.
-- BIGINT for INTEGER (ms times and counters). test/postgres-schema.test.ts keeps the two in step.
-- Lexical search is a GIN index over to_tsvector('simple', text) instead of FTS5.

CREATE TABLE memory_facts (
  tenant TEXT NOT NULL,
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  version BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant, scope, key)
);

CREATE TABLE memory_versions (
  id TEXT PRIMARY KEY,
  seq BIGINT,
  tenant TEXT NOT NULL,
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  version BIGINT NOT NULL,
  supersedes BIGINT,
  value TEXT NOT NULL,
  text TEXT,
  valid_from BIGINT NOT NULL,
  valid_to BIGINT,
  written_agent TEXT,
  written_run TEXT,
  written_task TEXT,
  written_turn BIGINT,
  written_actor TEXT NOT NULL,
  sources TEXT NOT NULL,
  trust TEXT NOT NULL,
  expires_at BIGINT,
  tombstone BIGINT NOT NULL DEFAULT 0,
  UNIQUE (tenant, scope, key, version)
);
CREATE INDEX memory_versions_current ON memory_versions (tenant, scope, key) WHERE valid_to IS NULL;
CREATE INDEX memory_versions_run ON memory_versions (written_run) WHERE valid_to IS NULL;
CREATE INDEX memory_versions_agent ON memory_versions (tenant, written_agent) WHERE valid_to IS NULL;
CREATE INDEX memory_versions_expiry ON memory_versions (expires_at) WHERE valid_to IS NULL;
-- Finds a version by its FTS rowid (seq) and covers what search filters on (tenant, grants,
-- validity), so ranking reads whole rows for the top k only.
CREATE INDEX memory_versions_search ON memory_versions (seq, tenant, scope, valid_from, valid_to, tombstone, expires_at);

CREATE TABLE memory_sources (
  version_id TEXT NOT NULL,
  source TEXT NOT NULL,
  PRIMARY KEY (version_id, source)
);
CREATE INDEX memory_sources_source ON memory_sources (source);

CREATE TABLE memory_conflicts (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  expected_version BIGINT NOT NULL,
  current_version BIGINT NOT NULL,
  proposed TEXT NOT NULL,
  proposed_text TEXT,
  strategy TEXT NOT NULL,
  state TEXT NOT NULL,
  resolved_version BIGINT,
  resolved_by TEXT,
  written_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  resolved_at BIGINT
);
CREATE INDEX memory_conflicts_state ON memory_conflicts (tenant, state, created_at);

-- Lexical search (the FTS5 table of the SQLite dialect): live versions' text.
CREATE INDEX memory_fts_gin ON memory_versions USING gin (to_tsvector('simple', coalesce(text, ''))) WHERE valid_to IS NULL AND tombstone = 0;
