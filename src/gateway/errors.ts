import { SpineError } from '../core/errors.ts';
import type { Json } from '../core/types.ts';

/**
 * Every error the gateway answers has one shape: `{"error": {"code", "message", …}}`
 * with the HTTP status that fits. Codes are stable (docs/gateway.md).
 */
export type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 426 | 500 | 503;

export class ApiError extends Error {
  readonly status: ErrorStatus;
  readonly code: string;
  readonly extra: Record<string, Json>;
  readonly headers: Record<string, string>;

  constructor(status: ErrorStatus, code: string, message: string, extra: Record<string, Json> = {}, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.extra = extra;
    this.headers = headers;
  }

  body(): { error: Record<string, Json> } {
    return { error: { code: this.code, message: this.message, ...this.extra } };
  }
}

/** A bad field in a request body or query: 400 listing each path. */
export function invalidRequest(issues: Array<{ path: string; message: string }>, what = 'request body'): ApiError {
  const summary = issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ');
  return new ApiError(400, 'INVALID_REQUEST', `invalid ${what}: ${summary}`, { issues: issues.map((i) => ({ path: i.path, message: i.message })) });
}

/** Maps anything thrown by a handler to an ApiError; unknown errors become a 500 that does not leak internals. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof SpineError) {
    const details: Record<string, Json> = err.details === undefined ? {} : { details: err.details };
    switch (err.code) {
      case 'NOT_FOUND':
        return new ApiError(404, 'NOT_FOUND', err.message, details);
      case 'INVALID_STATE':
        return new ApiError(409, 'INVALID_STATE', err.message, details);
      case 'INVALID_INPUT':
      case 'BAD_REQUEST':
        return new ApiError(400, err.code === 'BAD_REQUEST' ? 'BAD_REQUEST' : 'INVALID_REQUEST', err.message, details);
      case 'UNKNOWN_AGENT':
        return new ApiError(422, 'UNKNOWN_AGENT', err.message, details);
      case 'UNAUTHORIZED':
        return new ApiError(401, 'UNAUTHORIZED', err.message, details);
      case 'SCHEMA_TOO_NEW':
      case 'SCHEMA_OUTDATED':
        return new ApiError(503, err.code, err.message, details);
      default:
        return new ApiError(500, 'INTERNAL', 'internal error', {});
    }
  }
  return new ApiError(500, 'INTERNAL', 'internal error', {});
}
