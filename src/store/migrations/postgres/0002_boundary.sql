-- PostgreSQL dialect of ../sqlite/0002_boundary.sql: the same tables, columns and indexes.
-- BIGINT for INTEGER (ms times and counters), DOUBLE PRECISION for REAL, an identity
-- column for audit_events.seq. test/postgres-schema.test.ts keeps the two in step.

-- The boundary: contracts in use, spend budgets and reservations, rate-limit
-- buckets, approvals and standing grants; runs gain a tenant for daily ceilings.

ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';

CREATE TABLE contracts (
  id TEXT PRIMARY KEY,
  digest TEXT NOT NULL,
  schema TEXT NOT NULL,
  first_used_at BIGINT NOT NULL
);

-- One row per ceiling and period (e.g. cost:daily:agent:researcher:2026-11-21).
-- Money is in micro-dollars so sums stay exact.
CREATE TABLE budgets (
  key TEXT PRIMARY KEY,
  spent_micros BIGINT NOT NULL DEFAULT 0,
  reserved_micros BIGINT NOT NULL DEFAULT 0,
  spent_tokens BIGINT NOT NULL DEFAULT 0,
  reserved_tokens BIGINT NOT NULL DEFAULT 0,
  updated_at BIGINT NOT NULL
);

CREATE TABLE reservations (
  id TEXT PRIMARY KEY,
  run_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  keys TEXT NOT NULL,
  micros BIGINT NOT NULL,
  tokens BIGINT NOT NULL,
  state TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  settled_micros BIGINT,
  settled_tokens BIGINT,
  finished_at BIGINT
);
CREATE INDEX reservations_open_idx ON reservations (expires_at) WHERE state = 'reserved';

CREATE TABLE rate_buckets (
  key TEXT PRIMARY KEY,
  tokens DOUBLE PRECISION NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE approvals (
  id TEXT PRIMARY KEY,
  run_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  agent TEXT NOT NULL,
  action_key TEXT NOT NULL,
  action TEXT NOT NULL,
  kind TEXT NOT NULL,
  rule_id TEXT,
  reason TEXT NOT NULL,
  approvers TEXT NOT NULL,
  state TEXT NOT NULL,
  requested_at BIGINT NOT NULL,
  expires_at BIGINT,
  on_expiry TEXT,
  decided_by TEXT,
  decided_at BIGINT,
  decision_reason TEXT,
  supersedes TEXT
);
CREATE INDEX approvals_state_idx ON approvals (state, requested_at);
CREATE INDEX approvals_key_idx ON approvals (action_key, requested_at);
CREATE INDEX approvals_expiry_idx ON approvals (expires_at) WHERE state = 'pending';

CREATE TABLE standing_grants (
  id TEXT PRIMARY KEY,
  agent TEXT NOT NULL,
  action TEXT NOT NULL,
  granted_by TEXT NOT NULL,
  reason TEXT,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked_at BIGINT
);
CREATE INDEX standing_grants_agent_idx ON standing_grants (agent, expires_at);
