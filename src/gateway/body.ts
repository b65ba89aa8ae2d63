import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { jsonLimitProblem } from '../core/json-limits.ts';
import { ApiError } from './errors.ts';

/**
 * Request bodies. The size limit is hono's bodyLimit (a chunked body is cut off as soon
 * as it passes the limit), answered 413 BODY_TOO_LARGE. Bodies are then read as exact
 * bytes and decoded strictly as UTF-8: channel signatures are computed over this text.
 */
export function limitBody(limit: number): MiddlewareHandler {
  const tooLarge = () => {
    throw new ApiError('BODY_TOO_LARGE', `request body is larger than the limit of ${limit} bytes (gateway.bodyLimitBytes)`, { limit });
  };
  const framework = bodyLimit({ maxSize: limit, onError: tooLarge });
  return async (c, next) => {
    // A declared Content-Length is checked here as bodyLimit checks it, but without
    // touching the body stream first: on Node that would build a web Request for every
    // request and lose the adapter's direct read (≈40% of the gateway's CPU per envelope).
    const length = c.req.header('content-length');
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      if (Number.parseInt(length, 10) > limit) tooLarge();
      return next();
    }
    return framework(c, next);
  };
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The body as text; a body that cannot be read, or is not UTF-8, is a 400 INVALID_BODY. */
export async function readText(c: Context): Promise<string> {
  let bytes: ArrayBuffer;
  try {
    bytes = await c.req.arrayBuffer();
  } catch (err) {
    throw new ApiError('INVALID_BODY', `request body could not be read: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new ApiError('INVALID_BODY', 'request body is not valid UTF-8');
  }
}

/**
 * The body parsed as JSON. A body must be sent as `application/json` (or `…+json`):
 * a browser page on another origin can send `text/plain` without a CORS preflight,
 * so accepting it would let any local page post as the user (415
 * UNSUPPORTED_MEDIA_TYPE). An empty or malformed body is a 400 INVALID_JSON; one
 * nested too deep, too large in values, or holding a NUL is a 400 INPUT_LIMIT
 * (core/json-limits.ts), checked before anything else sees it. `empty` is what an
 * empty body means on a route whose body is optional.
 */
export async function readJson(c: Context, opts: { empty?: unknown; /** The route answers a wrong Content-Type itself (MCP: as JSON-RPC). */ ownMediaType?: boolean } = {}): Promise<unknown> {
  const text = await readText(c);
  if (text.trim() === '') {
    if ('empty' in opts) return opts.empty;
    throw new ApiError('INVALID_JSON', 'request body is empty; expected a JSON object');
  }
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (!opts.ownMediaType && !JSON_TYPE.test(type)) {
    throw new ApiError('UNSUPPORTED_MEDIA_TYPE', `request body must be sent as Content-Type: application/json (got ${type ? `"${type}"` : 'none'})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (err) {
    throw new ApiError('INVALID_JSON', `request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const problem = jsonLimitProblem(value);
  if (problem) throw new ApiError('INPUT_LIMIT', `request body ${problem.path === '(root)' ? '' : `at ${problem.path} `}${problem.message}`, { details: { limit: problem.limit, path: problem.path } });
  return value;
}

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json$/;
