import { ProviderError, type ModelUsage } from './types.ts';

/** The error classes both official SDKs export (same names, same shape). */
export interface SdkErrorClasses {
  APIError: abstract new (...args: never[]) => Error & { status: number | undefined; headers: Headers | undefined; error: unknown };
  APIUserAbortError: abstract new (...args: never[]) => Error;
  APIConnectionError: abstract new (...args: never[]) => Error;
  APIConnectionTimeoutError: abstract new (...args: never[]) => Error;
}

/**
 * Translates what an SDK threw into a ProviderError. An abort by our own signal is
 * rethrown as the signal's reason (the failover chain decides what it means).
 */
export function translateSdkError(err: unknown, sdk: SdkErrorClasses, signal: AbortSignal, usage: ModelUsage | null = null): unknown {
  if (err instanceof ProviderError) return err;
  if (signal.aborted) return signal.reason ?? err;
  if (err instanceof sdk.APIUserAbortError) return err;
  if (err instanceof sdk.APIConnectionTimeoutError) return new ProviderError('timeout', 'the request timed out', { usage, cause: err });
  if (err instanceof sdk.APIConnectionError) {
    return new ProviderError('connection', `connection failed: ${causeMessage(err)}`, { usage, cause: err });
  }
  if (err instanceof sdk.APIError) {
    const status = err.status;
    const type = errorType(err.error);
    const message = `${status ?? 'stream error'}${type ? ` ${type}` : ''}: ${errorMessage(err.error) ?? err.message}`;
    const opts = { status, retryAfterMs: retryAfterMs(err.headers), usage, cause: err };
    if (status === 429) return new ProviderError('rate-limited', message, opts);
    if (status === 529 || type === 'overloaded_error') return new ProviderError('overloaded', message, opts);
    // An error event inside a stream has no status: the provider failed mid-answer.
    if (status === undefined || status >= 500 || status === 408 || status === 409) return new ProviderError('server-error', message, opts);
    return new ProviderError('rejected', message, opts);
  }
  if (err instanceof SyntaxError) return new ProviderError('malformed-response', `the provider's answer is not valid JSON: ${err.message}`, { usage, cause: err });
  // undici: the body was cut off (`terminated`), or the socket died while reading.
  if (err instanceof TypeError && /terminated|socket|other side closed|ECONNRESET/i.test(`${err.message} ${causeMessage(err)}`)) {
    return new ProviderError('stream-cut', `the connection dropped mid-answer: ${causeMessage(err)}`, { usage, cause: err });
  }
  return err;
}

/** `retry-after-ms` (milliseconds), else `retry-after` (seconds or an HTTP date). */
export function retryAfterMs(headers: Headers | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '' && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const value = headers.get('retry-after');
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function errorType(body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return null;
  const b = body as { type?: unknown; error?: { type?: unknown } };
  if (typeof b.error?.type === 'string') return b.error.type;
  return typeof b.type === 'string' && b.type !== 'error' ? b.type : null;
}

function errorMessage(body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return null;
  const b = body as { message?: unknown; error?: { message?: unknown } };
  if (typeof b.error?.message === 'string') return b.error.message;
  return typeof b.message === 'string' ? b.message : null;
}

function causeMessage(err: Error): string {
  const cause = err.cause;
  if (cause instanceof Error) return `${cause.message}${'code' in cause ? ` (${String(cause.code)})` : ''}`;
  return err.message;
}
