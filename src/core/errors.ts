import type { ErrorInfo, Json } from './types.ts';

/**
 * Every error Spine raises on purpose is a SpineError subclass: one class per
 * condition, with a stable `code` (for programs and docs) and a `retryable` flag
 * that the retry policy reads. Anything else thrown by an agent or tool is wrapped
 * as AgentError (retryable) so an unknown failure is retried, not lost.
 */
export class SpineError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly details: Json | undefined;

  constructor(code: string, message: string, opts: { retryable: boolean; details?: Json; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = opts.retryable;
    this.details = opts.details;
  }

  toInfo(): ErrorInfo {
    const info: ErrorInfo = { code: this.code, message: this.message, retryable: this.retryable };
    if (this.details !== undefined) info.details = this.details;
    return info;
  }
}

/** One field of a config, payload or argument that failed validation. */
export interface FieldIssue {
  path: string;
  message: string;
}

/** A config file that cannot be used; nothing starts. */
export class ConfigError extends SpineError {
  readonly file: string;
  readonly issues: FieldIssue[];
  constructor(file: string, issues: FieldIssue[]) {
    super('CONFIG_INVALID', `${file}: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`, {
      retryable: false,
      details: issues.map((i) => ({ path: i.path, message: i.message })),
    });
    this.file = file;
    this.issues = issues;
  }
}

/** A command-line argument or API payload that is malformed; nothing is changed. */
export class InvalidInputError extends SpineError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('INVALID_INPUT', `${field}: ${message}`, { retryable: false });
    this.field = field;
  }
}

export class UnknownAgentError extends SpineError {
  readonly agent: string;
  constructor(agent: string, known: string[]) {
    super('UNKNOWN_AGENT', `unknown agent "${agent}" (known: ${known.join(', ') || 'none'})`, { retryable: false });
    this.agent = agent;
  }
}

export class UnknownToolError extends SpineError {
  readonly tool: string;
  constructor(tool: string, known: string[]) {
    super('UNKNOWN_TOOL', `unknown tool "${tool}" (known: ${known.join(', ') || 'none'})`, { retryable: false });
    this.tool = tool;
  }
}

export class NotFoundError extends SpineError {
  constructor(what: string, id: string) {
    super('NOT_FOUND', `${what} "${id}" not found`, { retryable: false });
  }
}

/** An operation that the current state forbids (e.g. retrying a succeeded run). */
export class InvalidStateError extends SpineError {
  constructor(message: string) {
    super('INVALID_STATE', message, { retryable: false });
  }
}

/** The agent answered something that is not a valid turn result (bad JSON, wrong shape). */
export class AgentProtocolError extends SpineError {
  readonly agent: string;
  constructor(agent: string, message: string, details?: Json) {
    super('AGENT_PROTOCOL', `agent "${agent}": ${message}`, { retryable: true, ...(details === undefined ? {} : { details }) });
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
    super('TURN_TIMEOUT', `agent "${agent}" did not finish its turn within ${timeoutMs} ms`, { retryable: true });
    this.timeoutMs = timeoutMs;
  }
}

/** A task used up its turn budget without returning an output. */
export class TurnLimitError extends SpineError {
  constructor(limit: number) {
    super('TURN_LIMIT', `task exceeded the limit of ${limit} turns without an output`, { retryable: false });
  }
}

/** A handoff would nest deeper than the configured limit. */
export class DepthLimitError extends SpineError {
  constructor(limit: number) {
    super('DEPTH_LIMIT', `handoff refused: the run is already ${limit} levels deep (limits.maxDepth)`, { retryable: false });
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
    super('CANCELLED', message, { retryable: false });
  }
}

/** A task was reclaimed from dead workers too many times (a likely poison pill). */
export class LeaseExpiredTooOftenError extends SpineError {
  constructor(reclaims: number) {
    super('LEASE_EXPIRED_TOO_OFTEN', `task's lease expired ${reclaims} times; its worker keeps dying`, { retryable: false });
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
      { retryable: false },
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
    super('LEASE_LOST', `lease on task ${taskId} was lost (expired, cancelled or taken over)`, { retryable: false });
  }
}

/** Normalises anything thrown into an ErrorInfo; unknown throws count as retryable agent failures. */
export function toErrorInfo(err: unknown, fallbackCode = 'INTERNAL'): ErrorInfo {
  if (err instanceof SpineError) return err.toInfo();
  const message = err instanceof Error ? err.message : String(err);
  return { code: fallbackCode, message, retryable: true };
}
