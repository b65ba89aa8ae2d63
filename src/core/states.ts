/**
 * Every state list, declared once as an `as const` array. The unions below, the
 * engine's transition table (engine/task-states.ts), the SQL state sets, the HTTP
 * schemas and OpenAPI enums, and the CLI's `--state` choices all derive from these.
 */

/**
 * Task lifecycle (allowed transitions: engine/task-states.ts):
 *
 *   queued ─lease→ leased ─turn starts→ running ─┬→ succeeded     (a claim does both steps in one commit)
 *     ↑                                          ├→ waiting (children, lane, approval) ─→ queued
 *     │                                          ├→ retry-scheduled ─due→ (leasable again)
 *     └──── lease expired / released ────────────┼→ escalated (a human decides) ─→ queued | dead
 *                                                ├→ dead (attempts spent, or not retryable)
 *                                                └→ cancelled (cascades to children)
 *
 * `failed` is recorded (audit) for every failed attempt; the task then moves on at
 * once to `retry-scheduled`, `escalated` or `dead`.
 */
export const TASK_STATES = ['queued', 'leased', 'running', 'waiting', 'retry-scheduled', 'succeeded', 'failed', 'escalated', 'dead', 'cancelled'] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** Run lifecycle: running → succeeded | failed | cancelled; `failed` → running again on retry. */
export const RUN_STATES = ['running', 'succeeded', 'failed', 'cancelled'] as const;
export type RunState = (typeof RUN_STATES)[number];
export const TERMINAL_RUN_STATES = ['succeeded', 'failed', 'cancelled'] as const satisfies readonly RunState[];

/**
 * Approval lifecycle: pending → approved | denied | expired | cancelled (its run or
 * task was cancelled; nothing is left to decide). An `escalation` is the same record
 * for a task a limit stopped (e.g. a cost ceiling): approving lets it go on.
 */
export const APPROVAL_STATES = ['pending', 'approved', 'denied', 'expired', 'cancelled'] as const;
export type ApprovalState = (typeof APPROVAL_STATES)[number];

/** routed: a run was made · routing: a routing agent is choosing · unroutable: no binding matched. */
export const ENVELOPE_STATES = ['routed', 'routing', 'unroutable'] as const;
export type EnvelopeState = (typeof ENVELOPE_STATES)[number];

/** Outbox item lifecycle: pending → sent | dead (store/outbox.ts). */
export const OUTBOX_STATES = ['pending', 'sent', 'dead'] as const;
export type OutboxState = (typeof OUTBOX_STATES)[number];

/** Effects ledger: started → completed | failed (started again, with attempts + 1, after a crash). */
export const EFFECT_STATES = ['started', 'completed', 'failed'] as const;
export type EffectState = (typeof EFFECT_STATES)[number];

/** A gate's check says pass, warn or fail (or the validator errored); the boundary's outcome is what it did about it (docs/validation.md). */
export const GATE_CHECK_VERDICTS = ['pass', 'warn', 'fail', 'error'] as const;
export type GateCheckVerdict = (typeof GATE_CHECK_VERDICTS)[number];
export const GATE_OUTCOMES = ['pass', 'warn', 'reask', 'fix', 'block', 'escalate'] as const;
export type GateOutcome = (typeof GATE_OUTCOMES)[number];
/** `shadow` evaluates and records without enforcing, for rollout. */
export const GATE_MODES = ['enforce', 'shadow'] as const;
export type GateMode = (typeof GATE_MODES)[number];

/** Circuit breakers: closed → open (after failures) → half-open (after the cooldown, one probe) → closed or open again. */
export const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;
export type BreakerState = (typeof BREAKER_STATES)[number];

/**
 * An audit verification's verdict (docs/audit.md): clean · tampered (a finding names
 * the first bad event) · unverifiable (nothing tampered was found, but something could
 * not be checked: no audit key to check checkpoint signatures, events older than the chain).
 */
export const AUDIT_VERDICTS = ['clean', 'tampered', 'unverifiable'] as const;
export type AuditVerdict = (typeof AUDIT_VERDICTS)[number];

/** What a tampering finding says was done to the trail. */
export const TAMPER_KINDS = ['edited', 'deleted', 'reordered', 'inserted', 'forged-checkpoint'] as const;
export type TamperKind = (typeof TAMPER_KINDS)[number];
