-- Intake, routing and sessions: envelopes, session lanes, API tokens, the outbox
-- and schedules. Runs and tasks learn which envelope and session they belong to.

ALTER TABLE runs ADD COLUMN envelope_id TEXT;
ALTER TABLE runs ADD COLUMN session_key TEXT;
ALTER TABLE runs ADD COLUMN session_seq INTEGER;
ALTER TABLE runs ADD COLUMN session_epoch INTEGER;
-- `router` runs hand the envelope to the agent their output names.
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'work';
CREATE INDEX runs_session_idx ON runs (session_key, session_seq);
-- The next message of a session to admit: only its unfinished runs, oldest first.
CREATE INDEX runs_session_open_idx ON runs (session_key, session_seq) WHERE state = 'running';
CREATE INDEX runs_envelope_idx ON runs (envelope_id);

-- What a `waiting` task waits for: children, approval or lane (its session is busy).
ALTER TABLE tasks ADD COLUMN waiting_for TEXT;

CREATE TABLE envelopes (
  id TEXT PRIMARY KEY,
  idempotency_key TEXT NOT NULL UNIQUE,
  channel TEXT NOT NULL,
  account TEXT NOT NULL,
  peer_kind TEXT NOT NULL,
  peer_id TEXT NOT NULL,
  parent_peer TEXT,
  sender TEXT,
  thread TEXT,
  text TEXT NOT NULL,
  data TEXT,
  reply_to TEXT,
  state TEXT NOT NULL,
  route TEXT,
  error TEXT,
  run_id TEXT,
  session_key TEXT,
  received_at INTEGER NOT NULL
);
CREATE INDEX envelopes_received_idx ON envelopes (received_at, id);
CREATE INDEX envelopes_state_idx ON envelopes (state, id);

-- One lane per session: at most one run active; the rest wait in session_seq order.
CREATE TABLE sessions (
  key TEXT PRIMARY KEY,
  agent TEXT NOT NULL,
  active_run TEXT,
  next_seq INTEGER NOT NULL DEFAULT 0,
  epoch INTEGER NOT NULL DEFAULT 0,
  forked_from TEXT,
  seed_history TEXT,
  created_at INTEGER NOT NULL,
  last_activity_at INTEGER NOT NULL,
  reset_at INTEGER,
  -- The message (next_seq) whose arrival last reset the session.
  reset_seq INTEGER
);

CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  scopes TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_used_at INTEGER,
  revoked_at INTEGER
);

CREATE TABLE outbox (
  id TEXT PRIMARY KEY,
  idempotency_key TEXT NOT NULL UNIQUE,
  run_id TEXT,
  task_id TEXT,
  channel TEXT NOT NULL,
  account TEXT NOT NULL,
  target TEXT NOT NULL,
  payload TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  lease_owner TEXT,
  lease_expires_at INTEGER,
  last_error TEXT,
  response TEXT,
  created_at INTEGER NOT NULL,
  sent_at INTEGER
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE state = 'pending';

-- One row per configured schedule (kept when it leaves the config). `spec` is the digest
-- of what decides its fire times; a claim (claim_id, claimed_at, claimed_fires: a JSON
-- array of fire times) is set with next_fire_at's advance and cleared once those fires'
-- envelopes are accepted, so a crash in between is finished by any process.
CREATE TABLE schedules (
  id TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  next_fire_at INTEGER,
  last_fire_at INTEGER,
  fires INTEGER NOT NULL DEFAULT 0,
  claim_id TEXT,
  claimed_at INTEGER,
  claimed_fires TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
