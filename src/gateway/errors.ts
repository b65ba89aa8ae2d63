import { SpineError, type ErrorCode } from '../core/errors.ts';
import { formatIssues } from '../core/issues.ts';
import type { Json } from '../core/types.ts';

/**
 * Every error the gateway answers has one shape: `{"error": {"code", "message", …}}`,
 * with the HTTP status the error catalogue (core/errors.ts) gives its code. Codes are
 * stable (docs/gateway.md).
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

/** A bad field in a request body or query: 400 listing each path. */
export function invalidRequest(issues: Array<{ path: string; message: string }>, what = 'request body'): ApiError {
  return new ApiError('INVALID_REQUEST', `invalid ${what}: ${formatIssues(issues)}`, { issues: issues.map((i) => ({ path: i.path, message: i.message })) });
}

/**
 * Maps anything thrown by a handler to an ApiError: a SpineError keeps its code (and
 * so its status); anything else is a bug, answered 500 without leaking internals.
 */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof SpineError) return new ApiError(err.code, err.message, err.details === undefined ? {} : { details: err.details });
  return new ApiError('INTERNAL', 'internal error');
}
