import { z } from '@hono/zod-openapi';
import type { Envelope } from '../core/envelope.ts';
import { BRIEF_STATES, EVIDENCE_KINDS, RESOLUTION_OUTCOMES, STRATEGIES, type Brief } from '../core/brief.ts';
import { ERROR_CODES } from '../core/errors.ts';
import { APPROVAL_STATES, AUDIT_VERDICTS, EFFECT_STATES, ENVELOPE_STATES, RUN_STATES, TAMPER_KINDS, TASK_STATES } from '../core/states.ts';
import type { VerifyReport } from '../audit/verify.ts';
import { WHY_STEP_KINDS, WHY_TARGET_KINDS, type WhyGraph } from '../audit/why.ts';
import type { Action, ActionResult, ErrorInfo, Json, Run, Task, TurnRecord } from '../core/types.ts';
import type { RunUsage } from '../core/usage.ts';
import type { Approval, AuditEvent, EffectRecord, EnvelopeRecord, SchemaStatus } from '../store/store.ts';

/**
 * The gateway's answers on the wire, as zod schemas for the OpenAPI document. They
 * restate the records of core/types.ts and store/store.ts, so each is checked against
 * its interface at compile time (bottom of this file): a field added, dropped or
 * retyped on either side fails `npm run typecheck`. Records are strict objects, so the
 * OpenAPI test also catches a field the store returns that this file does not know.
 */

/** Any JSON value. A custom schema (not z.json(), whose recursion the OpenAPI generator cannot follow); required unless marked optional. */
export const json = z
  .custom<Json>((v) => v !== undefined)
  .openapi('Json', { description: 'any JSON value', type: ['null', 'boolean', 'number', 'string', 'array', 'object'] });

const int = z.number().int();
const ms = int.min(0).openapi({ description: 'milliseconds since the Unix epoch' });
const str = z.string();

/** An error as runs, tasks, effects and envelopes record it (a code from an agent or tool may be outside the catalogue). */
export const errorInfo = z
  .strictObject({ code: str, message: str, retryable: z.boolean(), details: json.optional() })
  .openapi('ErrorInfo', { description: 'a recorded error: a catalogue code (docs/errors.md), or one reported by an agent or tool' });

export const run = z
  .strictObject({
    id: str,
    agent: str,
    state: z.enum(RUN_STATES),
    input: json,
    output: json.nullable(),
    error: errorInfo.nullable(),
    rootTaskId: str,
    tenant: str,
    envelopeId: str.nullable(),
    sessionKey: str.nullable(),
    kind: z.enum(['work', 'router']),
    idempotencyKey: str.nullable(),
    createdAt: ms,
    updatedAt: ms,
    finishedAt: ms.nullable(),
  })
  .openapi('Run');

export const task = z
  .strictObject({
    id: str,
    runId: str,
    parentId: str.nullable(),
    parentTurn: int.nullable(),
    parentAction: int.nullable(),
    depth: int,
    agent: str,
    state: z.enum(TASK_STATES),
    input: json,
    output: json.nullable(),
    error: errorInfo.nullable(),
    turns: int,
    waitingOn: int,
    attempt: int,
    maxAttempts: int,
    reclaims: int,
    leaseNo: int,
    leaseOwner: str.nullable(),
    leaseExpiresAt: ms.nullable(),
    runAt: ms,
    createdAt: ms,
    updatedAt: ms,
    finishedAt: ms.nullable(),
  })
  .openapi('Task');

const actionId = str.optional();
const action = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('tool'), tool: str, input: json.optional(), id: actionId }),
    z.strictObject({ type: z.literal('handoff'), agent: str, input: json.optional(), contract: str.optional(), id: actionId }),
    z.strictObject({ type: z.literal('deliver'), channel: str, account: str.optional(), to: str, thread: str.optional(), text: str, id: actionId }),
    z.strictObject({
      type: z.literal('remember'),
      scope: str,
      key: str,
      value: json,
      text: str.optional(),
      expectedVersion: int.optional(),
      ttl: z.union([int, str]).optional(),
      sources: z.array(str).optional(),
      id: actionId,
    }),
    z.strictObject({ type: z.literal('recall'), query: str.optional(), scope: str.optional(), key: str.optional(), k: int.optional(), asOf: int.optional(), id: actionId }),
    z.strictObject({ type: z.literal('call_agent'), agent: str, input: json.optional(), contract: str.optional(), id: actionId }),
  ])
  .openapi('Action');

const resultBase = { index: int, type: z.enum(['tool', 'handoff', 'deliver', 'remember', 'recall', 'call_agent']), id: actionId, taskId: str.optional() };
export const actionResult = z
  .discriminatedUnion('ok', [
    z.strictObject({ ...resultBase, ok: z.literal(true), value: json }),
    z.strictObject({ ...resultBase, ok: z.literal(false), error: errorInfo }),
  ])
  .openapi('ActionResult');

export const turnRecord = z.strictObject({ turn: int, actions: z.array(action), results: z.array(actionResult), output: json.optional() }).openapi('Turn');

export const effect = z
  .strictObject({
    key: str,
    runId: str,
    taskId: str,
    turn: int,
    action: int,
    tool: str,
    inputDigest: str,
    state: z.enum(EFFECT_STATES),
    attempts: int,
    result: json.nullable(),
    error: errorInfo.nullable(),
    startedAt: ms,
    completedAt: ms.nullable(),
  })
  .openapi('Effect');

export const envelopeRecord = z
  .strictObject({
    id: str,
    channel: str,
    account: str,
    peer: z.strictObject({ kind: z.enum(['dm', 'group', 'channel']), id: str }),
    parentPeer: str.nullable(),
    sender: z.strictObject({ id: str, name: str.optional(), roles: z.array(str).optional() }).nullable(),
    thread: str.nullable(),
    text: str,
    data: json,
    idempotencyKey: str.openapi({ description: 'API submissions: `api:` + the Idempotency-Key; channels: the platform event id' }),
    replyTo: json.nullable(),
    state: z.enum(ENVELOPE_STATES),
    route: json.nullable().openapi({ description: 'the routing decision: which binding fired and why' }),
    error: errorInfo.nullable(),
    runId: str.nullable(),
    sessionKey: str.nullable(),
    receivedAt: ms,
  })
  .openapi('EnvelopeRecord');

export const approval = z
  .strictObject({
    id: str,
    runId: str,
    taskId: str,
    agent: str,
    actionKey: str,
    action: json,
    kind: z.enum(['approval', 'escalation']),
    ruleId: str.nullable(),
    reason: str,
    approvers: str,
    state: z.enum(APPROVAL_STATES),
    requestedAt: ms,
    expiresAt: ms.nullable(),
    onExpiry: json.nullable(),
    decidedBy: str.nullable(),
    decidedAt: ms.nullable(),
    decisionReason: str.nullable(),
    supersedes: str.nullable(),
  })
  .openapi('Approval');

const maybe = str.nullable().optional();
export const auditEvent = z
  .strictObject({
    seq: int.min(1).openapi({ description: 'position in the audit log: the stream cursor' }),
    at: ms,
    kind: str.openapi({ description: 'e.g. envelope.received, route.decided, run.created, task.succeeded, approval.approved' }),
    runId: maybe,
    taskId: maybe,
    agent: maybe,
    actor: maybe,
    digest: maybe,
    data: json.optional(),
  })
  .openapi('AuditEvent');

export const schemaStatus = z.strictObject({ current: int, known: int }).openapi('SchemaStatus');

// ── briefs (docs/synthesis.md) ────────────────────────────────────────────────

const evidence = z.strictObject({ kind: z.enum(EVIDENCE_KINDS), ref: str });
const claimSource = z
  .strictObject({ agent: str, task: str, turn: int, effect: str.optional(), confidence: z.number().optional(), evidence: z.array(evidence) })
  .openapi('ClaimSource', { description: 'where a claim came from: the agent, its task and turn, the effect it cites' });
const candidate = z.strictObject({ value: json, from: z.array(claimSource) });
const decider = z.union([
  z.strictObject({ kind: z.literal('rule'), rule: str }),
  z.strictObject({ kind: z.literal('agent'), agent: str, task: str, turn: int }),
  z.strictObject({ kind: z.literal('human'), actor: str, approval: str }),
]);
const conflict = z
  .strictObject({
    key: str,
    candidates: z.array(candidate),
    rule: str.openapi({ description: 'the key pattern whose chain resolves it' }),
    step: int,
    steps: z.array(z.strictObject({ strategy: z.enum(STRATEGIES), outcome: z.enum(RESOLUTION_OUTCOMES), note: str.optional() })),
    pending: z.strictObject({ judge: str.optional(), approval: str.optional() }).nullable(),
    decision: z.strictObject({ strategy: z.enum(STRATEGIES), value: json, decider }).nullable(),
    unresolved: z.boolean(),
  })
  .openapi('Conflict');
export const brief = z
  .strictObject({
    id: str,
    runId: str,
    taskId: str,
    turn: int,
    agent: str,
    state: z.enum(BRIEF_STATES),
    digest: str.nullable(),
    lanes: int,
    claimed: int,
    parts: z.array(z.strictObject({ key: str, status: z.enum(['agree', 'complementary']), value: json, from: z.array(claimSource) })),
    conflicts: z.array(conflict),
    missing: z.array(z.strictObject({ key: str, lanes: z.array(str) })),
    failedLanes: z.array(z.strictObject({ agent: str, task: str, error: errorInfo })),
    createdAt: ms,
    updatedAt: ms,
  })
  .openapi('Brief', { description: 'the synthesised result of a join: parts with provenance, conflicts with their resolution, failed lanes, a digest' });

// ── the error body ────────────────────────────────────────────────────────────

const issue = z.strictObject({ path: str, message: str });

/** What `error` holds in every error answer: a catalogue code, a message, and the extras some codes add. */
export const errorDetail = z
  .strictObject({
    code: z.enum(ERROR_CODES).openapi({ description: 'a code of the error catalogue (docs/errors.md); its HTTP status is the one answered' }),
    message: str,
    issues: z.array(issue).optional().openapi({ description: 'INVALID_REQUEST: each bad path (query paths start with `query.`)' }),
    needed: z.array(str).optional().openapi({ description: 'FORBIDDEN: the scopes that would allow the request' }),
    limit: int.optional().openapi({ description: 'BODY_TOO_LARGE: the limit in bytes' }),
    envelope: str.optional().openapi({ description: 'IDEMPOTENCY_KEY_REUSED, UNROUTABLE: the envelope id' }),
    newest: int.optional().openapi({ description: 'INVALID_CURSOR: the newest seq of this store' }),
    decision: json.optional().openapi({ description: 'UNROUTABLE: the routing decision, with every candidate binding' }),
    details: json.optional().openapi({ description: 'what the error carries, e.g. CONTRACT_VIOLATION: `violations` naming each field' }),
  })
  .openapi('ErrorDetail');

/** One turn's reported usage (core/usage.ts). */
export const turnUsage = z
  .strictObject({ taskId: str, agent: str, turn: int, inputTokens: int, outputTokens: int, costUsd: z.number().nullable() })
  .openapi('TurnUsage', { description: "one turn's tokens and cost, as its agent reported them (null cost: not reported)" });

export const usageTotal = z.strictObject({ turns: int, inputTokens: int, outputTokens: int, costUsd: z.number().nullable() }).openapi('UsageTotal');

export const runSpend = z
  .strictObject({ reservedUsd: z.number(), reservedTokens: int, settledUsd: z.number(), settledTokens: int })
  .openapi('RunSpend', { description: "the run's spend under its cost ceilings: held by crossings in flight (reserved) and settled at actual usage" });

export const runUsage = z.strictObject({ turns: z.array(turnUsage), total: usageTotal, spend: runSpend }).openapi('RunUsage');

/** The one error body: `{"error": {code, message, …}}`. */
export const errorBody = z.strictObject({ error: errorDetail }).openapi('Error');

// ── compile-time checks: each schema and its interface are mutually assignable ──

/** Compile-time checks that a wire schema and its domain type are the same type (WireChecks, and the route files' own). */
export type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export type Check<T extends true> = T;

export type WireChecks = [
  Check<Same<z.infer<typeof errorInfo>, ErrorInfo>>,
  Check<Same<z.infer<typeof run>, Run>>,
  Check<Same<z.infer<typeof task>, Task>>,
  Check<Same<z.infer<typeof action>, Action>>,
  Check<Same<z.infer<typeof actionResult>, ActionResult>>,
  Check<Same<z.infer<typeof turnRecord>, TurnRecord>>,
  Check<Same<z.infer<typeof effect>, EffectRecord>>,
  Check<Same<z.infer<typeof envelopeRecord>, EnvelopeRecord>>,
  Check<Same<Omit<z.infer<typeof envelopeRecord>, 'id' | 'state' | 'route' | 'error' | 'runId' | 'sessionKey' | 'receivedAt'>, Envelope>>,
  Check<Same<z.infer<typeof approval>, Approval>>,
  Check<Same<z.infer<typeof auditEvent>, AuditEvent>>,
  Check<Same<z.infer<typeof schemaStatus>, SchemaStatus>>,
  Check<Same<z.infer<typeof runUsage>, RunUsage>>,
  Check<Same<z.infer<typeof brief>, Brief>>,
];

// ── the audit trail's verification and `why` (docs/audit.md) ──────────────────

export const auditFinding = z
  .strictObject({
    kind: z.enum(TAMPER_KINDS),
    seq: int.nullable(),
    stream: str.nullable(),
    streamSeq: int.nullable(),
    checkpoint: int.nullable(),
    message: str,
  })
  .openapi('AuditFinding');

export const verifyReport = z
  .strictObject({
    verdict: z.enum(AUDIT_VERDICTS),
    events: int,
    streams: int,
    checkpoints: int,
    legacy: int,
    first: auditFinding.nullable(),
    findings: z.array(auditFinding),
    unverifiable: z.array(str),
    scope: z.strictObject({ runId: str.nullable(), since: int.nullable() }),
    at: ms,
  })
  .openapi('AuditVerification');

const whyEvent = z.strictObject({
  seq: int,
  kind: str,
  at: ms,
  stream: str.nullable(),
  streamSeq: int.nullable(),
  actor: str.nullable(),
  data: json.nullable(),
  verified: z.boolean(),
});

export const whyGraph = z
  .strictObject({
    target: z.strictObject({ kind: z.enum(WHY_TARGET_KINDS), id: str }),
    runId: str.nullable(),
    steps: z.array(z.strictObject({ kind: z.enum(WHY_STEP_KINDS), id: str, summary: str, events: z.array(whyEvent) })),
    verified: z.boolean(),
    verdict: z.enum(AUDIT_VERDICTS),
  })
  .openapi('WhyGraph');

export type AuditWireChecks = [Check<Same<z.infer<typeof verifyReport>, VerifyReport>>, Check<Same<z.infer<typeof whyGraph>, WhyGraph>>];
