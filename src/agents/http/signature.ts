import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Request signing for HTTP agents (docs/http-agents.md). Spine signs each turn it
 * POSTs with HMAC-SHA256 over `<timestamp>.<body>`, keyed by the agent's shared secret:
 *
 *   X-Spine-Timestamp: 1767225600                 (Unix seconds)
 *   X-Spine-Signature: sha256=<hex digest>
 *
 * The receiver recomputes the digest over the raw body bytes it received, compares in
 * constant time, and refuses timestamps too far from its own clock (replays).
 */

export const SIGNATURE_HEADER = 'x-spine-signature';
export const TIMESTAMP_HEADER = 'x-spine-timestamp';
/** Default accepted clock difference for `verifySpineSignature`, in seconds. */
export const DEFAULT_TOLERANCE_SEC = 300;

/** `sha256=<hex>` for a body sent at `timestamp` (Unix seconds). */
export function signSpineRequest(secret: string, timestamp: number, body: string | Uint8Array): string {
  const mac = createHmac('sha256', secret);
  mac.update(`${timestamp}.`, 'utf8');
  mac.update(body);
  return `sha256=${mac.digest('hex')}`;
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

/**
 * Checks a request Spine signed: for agents written in Node (other languages do the
 * same in a few lines; see docs/http-agents.md).
 */
export function verifySpineSignature(
  secret: string,
  headers: { timestamp: string | null | undefined; signature: string | null | undefined },
  body: string | Uint8Array,
  opts: { nowSec?: number; toleranceSec?: number } = {},
): VerifyResult {
  const { timestamp, signature } = headers;
  if (!timestamp || !/^\d{1,15}$/.test(timestamp)) return { ok: false, reason: 'missing or malformed X-Spine-Timestamp' };
  if (!signature || !/^sha256=[0-9a-f]{64}$/.test(signature)) return { ok: false, reason: 'missing or malformed X-Spine-Signature' };
  const ts = Number(timestamp);
  const now = opts.nowSec ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - ts) > (opts.toleranceSec ?? DEFAULT_TOLERANCE_SEC)) return { ok: false, reason: 'timestamp outside the accepted window' };
  const expected = Buffer.from(signSpineRequest(secret, ts, body), 'utf8');
  const given = Buffer.from(signature, 'utf8');
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'signature does not match' };
  return { ok: true };
}
