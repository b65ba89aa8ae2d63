import { SpineError, type ErrorCode } from '../core/errors.ts';
import { formatIssues } from '../core/issues.ts';
import type { Json } from '../core/types.ts';

/** Seconds a client is asked to wait before retrying a retryable 503 (store unavailable, draining). */
const RETRY_AFTER_SECONDS = 1;

/**
 * Every error the gateway answers has one shape: `{"error": {"code", "message", …}}`,
 * with the HTTP status the error catalogue (core/errors.ts) gives its code. Codes are
 * stable (docs/errors.md).
 */
export class ApiError extends SpineError {
  readonly extra: Record<string, Json>;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message: string, extra: Record<string, Json> = {}, headers: Record<string, string> = {}) {
    super(code, message);
    this.name = 'ApiError';
    this.extra = extra;
    this.headers = headers;
  }

  body(): { error: Record<string, Json> } {
    return { error: { code: this.code, message: this.message, ...this.extra } };
  }
}

/** A token without the scope an action needs: 403 naming the scopes that would allow it. */
export function forbidden(p: { name: string; scopes: readonly string[] }, needed: string[], what: string): ApiError {
  return new ApiError('FORBIDDEN', `token "${p.name}" (scopes: ${p.scopes.join(', ') || 'none'}) may not ${what}; needs one of: ${needed.join(', ')}`, { needed });
}

/** A bad field in a request body or query: 400 listing each path. */
export function invalidRequest(issues: Array<{ path: string; message: string }>, what = 'request body'): ApiError {
  return new ApiError('INVALID_REQUEST', `invalid ${what}: ${formatIssues(issues)}`, { issues: issues.map((i) => ({ path: i.path, message: i.message })) });
}

/**
 * Maps anything thrown by a handler to an ApiError: a SpineError keeps its code (and
 * so its catalogue status); anything else is a bug, answered 500 without leaking
 * internals.
 */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof SpineError) return new ApiError(err.code, err.message, err.details === undefined ? {} : { details: err.details });
  return new ApiError('INTERNAL', 'internal error');
}

/** The headers an error answer carries: its own, and Retry-After on a retryable 503 (store unavailable, draining). */
export function errorHeaders(e: ApiError): Record<string, string> {
  return e.status === 503 && e.retryable ? { 'Retry-After': String(RETRY_AFTER_SECONDS), ...e.headers } : e.headers;
}
