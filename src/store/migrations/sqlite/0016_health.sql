-- Health (docs/health.md): stuck-work findings, recorded once per subject so a
-- periodic sweep raises one event per finding, not one per sweep; and the latest
-- result of each health probe, with the short lease that lets one worker run it.

CREATE TABLE stuck_findings (
  -- lease-expired, turn-overdue, join-overdue, approval-expiring, run-over-sla (validation/liveness.ts).
  kind TEXT NOT NULL,
  -- The stuck task, approval or run.
  subject TEXT NOT NULL,
  run_id TEXT NOT NULL,
  since INTEGER NOT NULL,
  detail TEXT NOT NULL,
  -- What the sweep did: report, escalate (approval_id) or cancel.
  action TEXT NOT NULL,
  approval_id TEXT,
  found_at INTEGER NOT NULL,
  PRIMARY KEY (kind, subject)
);
CREATE INDEX stuck_findings_found_idx ON stuck_findings (found_at);

CREATE TABLE health_probes (
  -- `agent:<name>` or `mcp:<server>`: the breaker it feeds.
  key TEXT PRIMARY KEY,
  ok INTEGER,
  checked_at INTEGER,
  ms INTEGER,
  detail TEXT,
  -- The worker that runs the probe now, and until when it may (one prober per probe across processes).
  owner TEXT,
  lease_until INTEGER NOT NULL,
  -- When the probe is next due.
  due_at INTEGER NOT NULL
);
