import { JSON_LIMITS, jsonLimitProblem, replaceNul } from '../core/json-limits.ts';
import { createHash, createHmac, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { Json } from '../core/types.ts';
import { type SendResult } from '../core/channel.ts';
import { BadChannelRequestError, UnauthorizedRequestError } from '../core/errors.ts';

/**
 * What the channel adapters share: signature checks that never leak timing, body
 * parsing, and one way to call a platform's HTTP API and classify its answer
 * (retryable or not, how long it asked us to wait).
 */

export function hmacSha256Hex(key: string, data: string): string {
  return createHmac('sha256', key).update(data, 'utf8').digest('hex');
}

export function sha256Hex(data: string): string {
  return createHash('sha256').update(data, 'utf8').digest('hex');
}

/** Compares two strings in time independent of where they differ (and of their lengths). */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db) && a.length === b.length;
}

/** Compares a received hex signature with the expected one, in constant time. */
export function safeEqualHex(received: string, expectedHex: string): boolean {
  const r = Buffer.from(received.trim().toLowerCase(), 'utf8');
  const e = Buffer.from(expectedHex.toLowerCase(), 'utf8');
  if (r.length !== e.length) return false;
  return timingSafeEqual(r, e);
}

/** A request header, or null. */
export function header(headers: Headers, name: string): string | null {
  const v = headers.get(name);
  return v === null || v === '' ? null : v;
}

export function requireHeader(headers: Headers, name: string): string {
  const v = header(headers, name);
  if (v === null) throw new UnauthorizedRequestError(`missing ${name} header`);
  return v;
}

/** Checks a Unix timestamp (seconds, or milliseconds if it looks like them) against a tolerance. */
export function checkTimestamp(raw: string, now: number, toleranceSec: number, what: string): number {
  if (!/^\d{1,16}$/.test(raw.trim())) throw new UnauthorizedRequestError(`${what} is not a Unix timestamp`);
  let ms = Number(raw.trim());
  if (ms < 1e12) ms *= 1000;
  const skew = Math.abs(now - ms);
  if (skew > toleranceSec * 1000) throw new UnauthorizedRequestError(`${what} is ${Math.round(skew / 1000)} s away from now (tolerance ${toleranceSec} s): stale or replayed`);
  return ms;
}

/** Parses a (verified) JSON body; anything but a JSON object is a bad request. */
export function parseObject(rawBody: string, channel: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(rawBody);
  } catch (err) {
    throw new BadChannelRequestError(`${channel}: body is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new BadChannelRequestError(`${channel}: body must be a JSON object`);
  // Depth and size limits refuse (400); a NUL in a verified message is kept as U+FFFD,
  // not refused: refusing would make the platform redeliver it until it gives up.
  const problem = jsonLimitProblem(v, JSON_LIMITS, { nul: false });
  if (problem) throw new BadChannelRequestError(`${channel}: body ${problem.path === '(root)' ? '' : `at ${problem.path} `}${problem.message}`);
  return (rawBody.includes('\\u0000') ? replaceNul(v) : v) as Record<string, unknown>;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function str(v: unknown): string | null {
  return typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : null;
}

/** The account's settings, or a 401: with no secret configured, nothing can be verified. */
export function accountOf<T>(accounts: Record<string, T>, channel: string, account: string): T {
  const a = Object.hasOwn(accounts, account) ? accounts[account] : undefined;
  if (a === undefined) throw new UnauthorizedRequestError(`no ${channel} account "${account}" is configured`);
  return a;
}

/** An Ed25519 public key from its 32 raw bytes in hex (as Discord shows it). */
export function ed25519PublicKey(hex: string): KeyObject {
  const x = Buffer.from(hex, 'hex').toString('base64url');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
}

/** The text of an outbox payload: `payload.text`, or the payload itself when it is a string. */
export function payloadText(payload: Json): string | null {
  if (typeof payload === 'string') return payload;
  if (isObject(payload) && typeof payload.text === 'string') return payload.text;
  return null;
}

/** Cuts text to a platform's limit, marking the cut. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  return text.slice(0, max - 1) + '…';
}

/** Delay the platform asked for: Retry-After in seconds or as an HTTP date. */
export function retryAfterHeader(headers: Headers, now = Date.now()): number | undefined {
  const v = headers.get('retry-after');
  if (v === null) return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.ceil(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: Json | null;
  text: string;
}

/** Sends one JSON request; a network failure or timeout comes back as a retryable SendResult. */
export async function callJson(
  fetchImpl: typeof fetch,
  url: string,
  init: { method: 'POST' | 'PATCH'; body: Json; headers?: Record<string, string> },
): Promise<HttpAnswer | SendResult> {
  let res: Response;
  try {
    res = await fetchImpl(url, {
      method: init.method,
      headers: { 'content-type': 'application/json; charset=utf-8', ...init.headers },
      body: JSON.stringify(init.body),
    });
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return { ok: false, retryable: true, error: `request failed: ${err instanceof Error ? err.message : String(err)}${cause}` };
  }
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    return { ok: false, retryable: true, status: res.status, error: `reading the response failed: ${err instanceof Error ? err.message : String(err)}` };
  }
  let body: Json | null;
  try {
    body = text ? (JSON.parse(text) as Json) : null;
  } catch {
    body = null;
  }
  return { status: res.status, headers: res.headers, body, text };
}

export function isAnswer(r: HttpAnswer | SendResult): r is HttpAnswer {
  return 'headers' in r;
}

/** Whether an HTTP status is worth retrying: timeouts, rate limits and server errors. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/** A failed HTTP answer as a SendResult, keeping the platform's error body (never the URL, which may hold a token). */
export function httpFailure(a: HttpAnswer, error: string, retryAfterMs?: number): SendResult {
  const out: SendResult = { ok: false, retryable: retryableStatus(a.status), status: a.status, error };
  if (a.body !== null) out.response = a.body;
  const after = retryAfterMs ?? retryAfterHeader(a.headers);
  if (after !== undefined) out.retryAfterMs = after;
  return out;
}

/** Compact description of a non-JSON error body for error messages. */
export function snippet(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 200 ? t.slice(0, 200) + '…' : t;
}
