import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The dashboard's browser session: a token is exchanged once (a form, or a one-time
 * login link) for an HttpOnly, SameSite=Strict cookie holding the token itself — so a
 * revoked token ends its sessions at once and a session outlives a gateway restart —
 * and every state change made with the cookie must carry the CSRF token the page was
 * rendered with (derived from the token; a bearer request needs none).
 */
export const SESSION_COOKIE = 'spine_session';
export const CSRF_HEADER = 'x-csrf-token';
const SESSION_MAX_AGE_S = 12 * 3600;
const LOGIN_CODE_TTL_MS = 10 * 60_000;

export function csrfToken(secret: string): string {
  return createHmac('sha256', secret).update('spine-dashboard-csrf').digest('base64url');
}

export function csrfMatches(secret: string, sent: string | undefined | null): boolean {
  if (!sent) return false;
  const want = Buffer.from(csrfToken(secret));
  const got = Buffer.from(sent);
  return want.length === got.length && timingSafeEqual(want, got);
}

/** The session cookie's value, if the request has one. */
export function sessionSecret(cookieHeader: string | undefined | null): string | null {
  if (!cookieHeader) return null;
  for (const part of cookieHeader.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === SESSION_COOKIE) return decodeURIComponent(part.slice(i + 1).trim()) || null;
  }
  return null;
}

export function sessionCookie(secret: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${encodeURIComponent(secret)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MAX_AGE_S}${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
}

/** A request whose Origin (if a browser sent one) is not this gateway's own: refused for cookie logins and state changes. */
export function crossOrigin(headers: Headers, requestUrl: string): boolean {
  const origin = headers.get('origin');
  if (origin === null || origin === 'null') return origin === 'null';
  return origin !== new URL(requestUrl).origin;
}

/**
 * One-time login links (`spine up` prints one for the local admin): a random code,
 * good for ten minutes and one use, stands for a token secret held in memory only.
 */
export class LoginCodes {
  private readonly codes = new Map<string, { secret: string; expires: number }>();
  private readonly now: () => number;

  constructor(now: () => number) {
    this.now = now;
  }

  issue(secret: string): string {
    const code = randomBytes(24).toString('base64url');
    this.codes.set(code, { secret, expires: this.now() + LOGIN_CODE_TTL_MS });
    return code;
  }

  /** The token secret for a code, once; null when unknown, used or expired. */
  redeem(code: string): string | null {
    const entry = this.codes.get(code);
    this.codes.delete(code);
    for (const [k, v] of this.codes) if (v.expires < this.now()) this.codes.delete(k);
    return entry && entry.expires >= this.now() ? entry.secret : null;
  }
}
