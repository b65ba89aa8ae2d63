-- Validation (docs/validation.md): every gate verdict as a queryable record, written
-- in the transaction of the audit event that carries it; and the circuit breakers
-- every worker shares.

CREATE TABLE gate_verdicts (
  seq INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  gate TEXT NOT NULL,
  crossing TEXT NOT NULL,
  -- What crossed: the tool, the receiving agent, `channel:to`, the fact's scope/key…
  name TEXT NOT NULL,
  run_id TEXT,
  task_id TEXT,
  agent TEXT,
  effect_key TEXT NOT NULL,
  -- `enforce` or `shadow` (evaluated and recorded, never enforced).
  mode TEXT NOT NULL,
  -- What the check said (pass, warn, fail, error) and what the boundary did (pass, warn, reask, fix, block, escalate).
  verdict TEXT NOT NULL,
  outcome TEXT NOT NULL,
  reasons TEXT NOT NULL,
  input_digest TEXT NOT NULL,
  config_version TEXT NOT NULL
);
CREATE INDEX gate_verdicts_run_idx ON gate_verdicts (run_id, seq);
CREATE INDEX gate_verdicts_task_gate_idx ON gate_verdicts (task_id, gate, outcome);
CREATE INDEX gate_verdicts_gate_idx ON gate_verdicts (gate, seq);

-- One breaker per agent, tool or model endpoint (`agent:<name>`, `tool:<name>`, `model:<endpoint>`).
CREATE TABLE breakers (
  key TEXT PRIMARY KEY,
  -- closed → open → half-open → closed (core/states.ts BREAKER_STATES).
  state TEXT NOT NULL,
  -- Failures and calls within the current window.
  failures INTEGER NOT NULL,
  calls INTEGER NOT NULL,
  window_start INTEGER NOT NULL,
  -- When an open breaker lets its half-open probe through.
  retry_at INTEGER,
  -- Who holds the half-open probe, and until when.
  probe_owner TEXT,
  probe_until INTEGER,
  last_error TEXT,
  changed_at INTEGER NOT NULL
);
