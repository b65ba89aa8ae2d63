import { redact, redactDeep } from './redact.ts';
import { formatIssues, type FieldIssue } from './issues.ts';
import type { ErrorInfo, Json } from './types.ts';
import type { MeshRefusal } from './mesh.ts';

/**
 * The one error catalogue. Every code Spine answers with — to an HTTP client, a CLI
 * user, an MCP or A2A peer, or an agent in its action results — is a key of this
 * table, with its HTTP status, its CLI exit code and whether trying again may help.
 * The gateway, the CLI, MCP and A2A all read from it; nobody keeps a table of their
 * own. A 500 (`INTERNAL`) means a bug and nothing else.
 *
 * Exit codes: 0 ok · 1 the work failed · 2 bad usage, argument, input or config ·
 * 3 refused (not found, not allowed, not in this state) · 4 the database schema does
 * not match this Spine · 5 unavailable now (store down, full or read-only; draining):
 * try again later · 6 the audit trail was tampered with · 7 the audit trail could not
 * be fully verified (`spine audit verify`, docs/audit.md).
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, refused: 3, schema: 4, unavailable: 5, tampered: 6, unverifiable: 7 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The HTTP statuses the catalogue uses. */
export type HttpStatus = 400 | 401 | 402 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 426 | 429 | 500 | 502 | 503 | 504;

interface CatalogueEntry {
  status: HttpStatus;
  exit: ExitCode;
  retryable: boolean;
  /** What the condition means, for docs/errors.md and the OpenAPI document. */
  summary: string;
}

const entry = (status: HttpStatus, exit: ExitCode, retryable: boolean, summary: string): CatalogueEntry => ({ status, exit, retryable, summary });

export const ERROR_CATALOGUE = {
  // ── bad input: nothing was changed ──
  CONFIG_INVALID: entry(400, EXIT.usage, false, 'the config file (or a module it names) cannot be used; each problem names its field'),
  INVALID_INPUT: entry(400, EXIT.usage, false, 'a command-line argument or operation input is malformed; the message names it'),
  INVALID_REQUEST: entry(400, EXIT.usage, false, 'a request body or query fails validation; `issues` lists each path'),
  INVALID_JSON: entry(400, EXIT.usage, false, 'the request body is empty or not JSON'),
  INVALID_BODY: entry(400, EXIT.usage, false, 'the request body could not be read or is not UTF-8'),
  INVALID_IDEMPOTENCY_KEY: entry(400, EXIT.usage, false, 'the Idempotency-Key header is not 1–255 printable ASCII characters'),
  INVALID_CURSOR: entry(400, EXIT.usage, false, 'an event-stream cursor is beyond the newest event of this store'),
  BAD_REQUEST: entry(400, EXIT.usage, false, 'a correctly signed channel request that the channel does not understand'),
  INPUT_LIMIT: entry(400, EXIT.usage, false, 'a JSON input is nested deeper than 64 levels, holds more than 100,000 values, or has a NUL character; `details` names the limit and path'),
  BODY_TOO_LARGE: entry(413, EXIT.usage, false, 'the request body is larger than gateway.bodyLimitBytes'),
  UNSUPPORTED_MEDIA_TYPE: entry(415, EXIT.usage, false, 'a JSON route was sent a body that is not application/json'),
  UNKNOWN_AGENT: entry(422, EXIT.usage, false, 'no agent of that name is configured'),
  UNKNOWN_TOOL: entry(422, EXIT.usage, false, 'no tool of that name is in the catalog'),
  CONTRACT_VIOLATION: entry(422, EXIT.usage, false, 'a payload breaks its contract; `details.violations` names each field'),
  CONTRACT_MISMATCH: entry(422, EXIT.usage, false, 'a handoff declares a contract its receiver does not accept'),
  UNROUTABLE: entry(422, EXIT.usage, false, 'no binding matches the envelope, and none is the default'),
  INVALID_SCOPE: entry(422, EXIT.usage, false, 'a memory scope or key is not of a known form (`global`, `team/<name>`, `agent/<name>`, `run/<id>`, `session/<key>`, `tenant/<id>`)'),
  VALUE_TOO_LARGE: entry(413, EXIT.usage, false, 'a memory value or text is larger than memory.maxValueBytes / maxTextBytes'),
  // ── who may do what ──
  UNAUTHENTICATED: entry(401, EXIT.refused, false, 'no, a malformed, an unknown or a revoked bearer token'),
  UNAUTHORIZED: entry(401, EXIT.refused, false, "a channel request whose signature, timestamp or secret is wrong"),
  FORBIDDEN: entry(403, EXIT.refused, false, "the token's scopes do not allow this"),
  POLICY_DENIED: entry(403, EXIT.refused, false, 'policy refused the crossing; `details.ruleId` names the rule'),
  GATE_BLOCKED: entry(422, EXIT.refused, false, 'a validation gate blocked the crossing; `details.gate` names it and `details.reasons` says why'),
  ESCALATION_DENIED: entry(403, EXIT.refused, false, 'an operator denied the escalation of a task'),
  // ── what exists and in which state ──
  NOT_FOUND: entry(404, EXIT.refused, false, 'no such run, task, envelope, approval, session, token or route'),
  UNKNOWN_CHANNEL: entry(404, EXIT.refused, false, 'no channel of that name is configured'),
  METHOD_NOT_ALLOWED: entry(405, EXIT.refused, false, 'the route exists, but not with this method'),
  INVALID_STATE: entry(409, EXIT.refused, false, 'the current state forbids this (e.g. retrying a run that succeeded)'),
  MEMORY_CONFLICT: entry(409, EXIT.refused, false, 'a compare-and-set memory write met a newer version; `details` holds both, and the conflict is in the merge queue'),
  IDEMPOTENCY_KEY_REUSED: entry(409, EXIT.refused, false, 'the idempotency key was already used for different work'),
  UPGRADE_REQUIRED: entry(426, EXIT.usage, false, 'a WebSocket endpoint was called without the upgrade'),
  // ── limits ──
  RATE_LIMITED: entry(429, EXIT.failed, true, 'a rate limit with onExceeded "fail" was exceeded; `details.retryAt` says when'),
  BUDGET_EXCEEDED: entry(402, EXIT.failed, false, 'a cost ceiling was reached; the task escalated to a human (a heartbeat\'s maxCostUsd: the task failed)'),
  TURN_LIMIT: entry(422, EXIT.failed, false, 'a task took limits.maxTurns turns without an output'),
  DEPTH_LIMIT: entry(422, EXIT.failed, false, 'a handoff would nest deeper than limits.maxDepth'),
  MESH_REFUSED: entry(403, EXIT.refused, false, 'the mesh refused a direct call (`call_agent`); `details.reason` is undeclared, hops, cycle, rate (retryable, `details.retryAt`), effects or capability (a shim call whose per-turn capability is unknown or whose turn has ended)'),
  // ── the work itself ──
  AGENT_FAILED: entry(502, EXIT.failed, true, 'the agent threw, crashed or exited non-zero'),
  AGENT_PROTOCOL: entry(502, EXIT.failed, true, 'the agent answered something that is not a valid turn result'),
  TURN_TIMEOUT: entry(504, EXIT.failed, true, "the agent did not finish its turn within its timeout"),
  TOOL_FAILED: entry(502, EXIT.failed, false, 'a tool threw; delivered to the agent as the action result'),
  DELIVERY_FAILED: entry(502, EXIT.failed, false, 'an outbound message could not be delivered'),
  OUTBOX_ATTEMPTS_EXHAUSTED: entry(502, EXIT.failed, false, 'an outbound message failed every attempt'),
  CANCELLED: entry(409, EXIT.failed, false, 'the task or run was cancelled'),
  LANE_CANCELLED: entry(409, EXIT.failed, false, "a handoff's child was cancelled because its join completed without it (first, race or quorum)"),
  LANE_EXPIRED: entry(504, EXIT.failed, false, "a handoff's child was still running at its join's deadline and was cancelled"),
  JOIN_FAILED: entry(502, EXIT.failed, false, 'a join with onChildFailure "fail" could no longer be satisfied; the parent task failed'),
  CHILD_NOT_FINISHED: entry(409, EXIT.failed, false, "a handoff's child task has not finished yet"),
  NO_RESULT: entry(502, EXIT.failed, false, 'an agent finished without a result'),
  LEASE_LOST: entry(409, EXIT.failed, false, "a worker lost its task's lease; another worker takes over"),
  LEASE_EXPIRED_TOO_OFTEN: entry(500, EXIT.failed, false, "the task's worker kept dying; dead-lettered as a likely poison pill"),
  GATE_REASK: entry(422, EXIT.failed, true, 'a validation gate sends the reasons back to the producer to try again (at most the gate\'s maxReasks times)'),
  // ── the system ──
  CIRCUIT_OPEN: entry(503, EXIT.unavailable, true, 'a circuit breaker (agent, tool or model endpoint) is open; the task waits for its cooldown and uses no attempt'),
  STORE_UNAVAILABLE: entry(503, EXIT.unavailable, true, 'the store cannot be reached or cannot write (down, disk full, read-only, I/O error)'),
  VECTORS_UNAVAILABLE: entry(503, EXIT.usage, false, 'memory.embedder asks for vector search and the store cannot do it (SQLite without sqlite-vec, PostgreSQL without pgvector); the message names the fix'),
  SECRET_UNSET: entry(503, EXIT.usage, false, 'a secret the config reads from an environment variable (`{env}`) is unset in this process; only what needs it fails'),
  DRAINING: entry(503, EXIT.unavailable, true, 'the process is shutting down; retry on another instance or shortly'),
  SCHEMA_TOO_NEW: entry(503, EXIT.schema, false, 'the database schema is newer than this Spine'),
  SCHEMA_OUTDATED: entry(503, EXIT.schema, false, 'the database schema is older than this Spine: run `spine migrate`'),
  INTERNAL: entry(500, EXIT.failed, true, 'a bug in Spine: please report it'),
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;
export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CATALOGUE, code);
}

/** The catalogue entry of any code (an unknown code — e.g. from a remote agent — is treated as a failure of the work). */
export function catalogueEntry(code: string): CatalogueEntry {
  return isErrorCode(code) ? ERROR_CATALOGUE[code] : { status: 502, exit: EXIT.failed, retryable: false, summary: 'an error reported by an agent or tool' };
}

/**
 * Every error Spine raises on purpose is a SpineError subclass: one class per
 * condition, with its `code` from the catalogue (HTTP status, exit code and default
 * `retryable` follow from it). Anything else thrown by an agent or tool is wrapped as
 * AgentError (retryable) so an unknown failure is retried, not lost.
 */
export class SpineError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Json | undefined;

  constructor(code: ErrorCode, message: string, opts: { retryable?: boolean; details?: Json; cause?: unknown } = {}) {
    // Every error message and detail passes the one redaction layer: errors are stored, logged and answered.
    super(redact(message), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = opts.retryable ?? ERROR_CATALOGUE[code].retryable;
    this.details = opts.details === undefined ? undefined : redactDeep(opts.details);
  }

  /** The HTTP status this error is answered with. */
  get status(): HttpStatus {
    return ERROR_CATALOGUE[this.code].status;
  }

  /** The CLI exit code this error ends a command with. */
  get exitCode(): ExitCode {
    return ERROR_CATALOGUE[this.code].exit;
  }

  toInfo(): ErrorInfo {
    const info: ErrorInfo = { code: this.code, message: this.message, retryable: this.retryable };
    if (this.details !== undefined) info.details = this.details;
    return info;
  }

  /** Rebuilds an error from its stored form (e.g. a refusal recorded in the audit). */
  static fromInfo(info: ErrorInfo): SpineError {
    return new SpineError(isErrorCode(info.code) ? info.code : 'INTERNAL', info.message, {
      retryable: info.retryable,
      ...(info.details === undefined ? {} : { details: info.details }),
    });
  }
}

export type { FieldIssue };

/** A config file that cannot be used; nothing starts. */
export class ConfigError extends SpineError {
  readonly file: string;
  readonly issues: FieldIssue[];
  constructor(file: string, issues: FieldIssue[]) {
    super('CONFIG_INVALID', `${file}: ${formatIssues(issues)}`, {
      details: issues.map((i) => ({ path: i.path, message: i.message })),
    });
    this.file = file;
    this.issues = issues;
  }
}

/**
 * A secret given as `{env: 'NAME'}` is read when it is first needed, and this process
 * does not have it: only the thing that needs it fails (a channel's webhook, a reply).
 */
export class SecretUnsetError extends SpineError {
  readonly variable: string;
  constructor(path: string, variable: string) {
    super('SECRET_UNSET', `${path}: environment variable ${variable} is not set in this process`);
    this.variable = variable;
  }
}

/** A command-line argument or API payload that is malformed; nothing is changed. */
export class InvalidInputError extends SpineError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('INVALID_INPUT', `${field}: ${message}`);
    this.field = field;
  }
}

export class UnknownAgentError extends SpineError {
  readonly agent: string;
  constructor(agent: string, known: string[]) {
    super('UNKNOWN_AGENT', `unknown agent "${agent}" (known: ${known.join(', ') || 'none'})`);
    this.agent = agent;
  }
}

export class UnknownToolError extends SpineError {
  readonly tool: string;
  constructor(tool: string, known: string[]) {
    super('UNKNOWN_TOOL', `unknown tool "${tool}" (known: ${known.join(', ') || 'none'})`);
    this.tool = tool;
  }
}

export class NotFoundError extends SpineError {
  constructor(what: string, id: string) {
    super('NOT_FOUND', `${what} "${id}" not found`);
  }
}

/** An operation that the current state forbids (e.g. retrying a succeeded run). */
export class InvalidStateError extends SpineError {
  constructor(message: string) {
    super('INVALID_STATE', message);
  }
}

/** The agent answered something that is not a valid turn result (bad JSON, wrong shape). */
export class AgentProtocolError extends SpineError {
  readonly agent: string;
  constructor(agent: string, message: string, details?: Json) {
    super('AGENT_PROTOCOL', `agent "${agent}": ${message}`, details === undefined ? {} : { details });
    this.agent = agent;
  }
}

/** The agent threw, crashed or exited non-zero. */
export class AgentError extends SpineError {
  readonly agent: string;
  constructor(agent: string, message: string, opts: { retryable?: boolean; details?: Json; cause?: unknown } = {}) {
    super('AGENT_FAILED', `agent "${agent}": ${message}`, {
      retryable: opts.retryable ?? true,
      ...(opts.details === undefined ? {} : { details: opts.details }),
      cause: opts.cause,
    });
    this.agent = agent;
  }
}

/** A turn ran past its agent's timeout and was aborted. */
export class TurnTimeoutError extends SpineError {
  readonly timeoutMs: number;
  constructor(agent: string, timeoutMs: number) {
    super('TURN_TIMEOUT', `agent "${agent}" did not finish its turn within ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/** A task used up its turn budget without returning an output. */
export class TurnLimitError extends SpineError {
  constructor(limit: number) {
    super('TURN_LIMIT', `task exceeded the limit of ${limit} turns without an output`);
  }
}

/** A handoff would nest deeper than the configured limit. */
export class DepthLimitError extends SpineError {
  constructor(limit: number) {
    super('DEPTH_LIMIT', `handoff refused: the run is already ${limit} levels deep (limits.maxDepth)`);
  }
}

/** A tool threw. Delivered to the agent as the action's result. */
export class ToolError extends SpineError {
  readonly tool: string;
  constructor(tool: string, message: string, opts: { retryable?: boolean; cause?: unknown } = {}) {
    super('TOOL_FAILED', `tool "${tool}": ${message}`, { retryable: opts.retryable ?? false, cause: opts.cause });
    this.tool = tool;
  }
}

/** The task was cancelled (delivered to a parent as the child's result). */
export class CancelledError extends SpineError {
  constructor(message = 'cancelled') {
    super('CANCELLED', message);
  }
}

/** A lane (a handoff's child) that a join no longer waits for: cancelled because the join completed, or expired at its deadline. */
export class LaneEndedError extends SpineError {
  constructor(kind: 'cancelled' | 'expired', detail: string) {
    super(kind === 'cancelled' ? 'LANE_CANCELLED' : 'LANE_EXPIRED', detail);
  }
}

/** A join with onChildFailure "fail" can no longer be satisfied. */
export class JoinFailedError extends SpineError {
  constructor(detail: string, details?: Json) {
    super('JOIN_FAILED', detail, details === undefined ? {} : { details });
  }
}

/** A task was reclaimed from dead workers too many times (a likely poison pill). */
export class LeaseExpiredTooOftenError extends SpineError {
  constructor(reclaims: number) {
    super('LEASE_EXPIRED_TOO_OFTEN', `task's lease expired ${reclaims} times; its worker keeps dying`);
  }
}

/** The database schema is newer than this build of Spine knows. */
export class SchemaTooNewError extends SpineError {
  readonly found: number;
  readonly known: number;
  constructor(found: number, known: number) {
    super(
      'SCHEMA_TOO_NEW',
      `database schema is at version ${found}, but this Spine knows migrations only up to ${known}; upgrade Spine before using this database`,
    );
    this.found = found;
    this.known = known;
  }
}

/** The store is not migrated to the version this build needs. */
export class SchemaOutdatedError extends SpineError {
  constructor(found: number, known: number) {
    super('SCHEMA_OUTDATED', `database schema is at version ${found}; this Spine needs ${known}: run \`spine migrate\``, {
      retryable: false,
    });
  }
}

/** A commit was refused because this worker no longer holds the task's lease. */
export class LeaseLostError extends SpineError {
  constructor(taskId: string) {
    super('LEASE_LOST', `lease on task ${taskId} was lost (expired, cancelled or taken over)`);
  }
}

/** Normalises anything thrown into an ErrorInfo; unknown throws count as retryable failures. */
export function toErrorInfo(err: unknown, fallbackCode: ErrorCode = 'INTERNAL'): ErrorInfo {
  if (err instanceof SpineError) return err.toInfo();
  const message = redact(err instanceof Error ? err.message : String(err));
  return { code: fallbackCode, message, retryable: true };
}

/** A channel request whose signature, timestamp or secret is wrong. Answered 401; nothing is stored. */
export class UnauthorizedRequestError extends SpineError {
  constructor(message: string) {
    super('UNAUTHORIZED', message);
  }
}

/** A channel request that is signed but not something the channel understands. Answered 400; nothing is stored. */
export class BadChannelRequestError extends SpineError {
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}

/**
 * The store cannot be reached or cannot write: the server or connection is gone, the
 * disk is full, the file is read-only or an I/O error struck. Retryable: nothing was
 * committed, so the caller (a client, the worker loop) tries again once it clears.
 */
export class StoreUnavailableError extends SpineError {
  constructor(message: string, cause?: unknown) {
    super('STORE_UNAVAILABLE', `store unavailable: ${message}`, { cause });
  }
}

/** The process is shutting down and takes no new work. */
export class DrainingError extends SpineError {
  constructor(message = 'Spine is shutting down; retry on another instance or shortly') {
    super('DRAINING', message);
  }
}

/** A circuit breaker is open: work that needs it waits for the cooldown (retryable; uses no attempt). */
export class CircuitOpenError extends SpineError {
  constructor(breaker: string, retryAt: number) {
    super('CIRCUIT_OPEN', `circuit breaker ${breaker} is open until ${new Date(retryAt).toISOString()}`, { details: { breaker, retryAt } });
  }
}

/** Vector search is configured (memory.embedder) and this store cannot do it; nothing starts. */
export class VectorsUnavailableError extends SpineError {
  constructor(fix: string) {
    super('VECTORS_UNAVAILABLE', `memory.embedder needs vector search, and ${fix}`);
  }
}

/** A memory scope or key of no known form; nothing is written. */
export class InvalidScopeError extends SpineError {
  constructor(message: string) {
    super('INVALID_SCOPE', message);
  }
}

/** A memory value or text over its limit; nothing is written. */
export class ValueTooLargeError extends SpineError {
  constructor(what: string, bytes: number, limit: number) {
    super('VALUE_TOO_LARGE', `${what} is ${bytes} bytes; the limit is ${limit} (memory.${what === 'text' ? 'maxTextBytes' : 'maxValueBytes'})`, { details: { bytes, limit } });
  }
}

/** The mesh refused a direct call (docs/mesh.md): audited as `mesh.refused`, never routed through the hub instead. */
export class MeshRefusedError extends SpineError {
  constructor(reason: MeshRefusal, message: string, details: { [key: string]: Json }) {
    super('MESH_REFUSED', message, { details: { reason, ...details }, retryable: reason === 'rate' });
  }
}
