/**
 * The one redaction layer. Every value Spine knows to be secret — a secret read from
 * config (`{env: …}` or inline), a token, a signing secret, a database password, the
 * userinfo and query of a configured URL — is registered here once, and every exit
 * (store writes, logs, error messages) passes its text through `redact`. Nothing is
 * patched per call site: the SQL executor, the logger and SpineError call it.
 *
 * Registered values are replaced wherever they occur. Text that is not user data
 * (error messages, stderr, logs) also has the userinfo and query of any URL in it
 * masked, since an unknown URL may still carry a key (`?api_key=…`).
 */

export const REDACTED = '[redacted]';

/** Shorter values would mask ordinary words; no real secret is this short. */
const MIN_SECRET_LENGTH = 6;

const secrets = new Set<string>();
let pattern: RegExp | null = null;

/** Environment variables whose values are secret by their name. */
const SECRET_ENV_NAME = /(^|_)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|DSN)(_|$)|PASSWORD$|^(SPINE_DB|DATABASE_URL)$/i;

/** Query parameters of a configured URL whose values are secret (`?api_key=…`, `?sig=…`). */
const SECRET_QUERY_NAME = /key|token|secret|pass|sig|auth|code|credential/i;

/** Registers a secret value; from now on it never leaves Spine unmasked. */
export function registerSecret(value: string | undefined | null): void {
  if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH || secrets.has(value)) return;
  secrets.add(value);
  // Longest first, so a secret that contains another is masked whole.
  const sorted = [...secrets].sort((a, b) => b.length - a.length);
  pattern = new RegExp(sorted.map(escapeRegExp).join('|'), 'g');
  // A URL's own secrets (its password, its query values) are secrets too.
  registerUrlParts(value);
}

/** Registers the userinfo password and the query values of a configured URL. */
export function registerUrlSecrets(url: string | undefined | null): void {
  if (typeof url !== 'string') return;
  registerUrlParts(url);
}

function registerUrlParts(value: string): void {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return;
  }
  if (u.password) {
    registerSecret(u.password);
    registerSecret(decodeURIComponentSafe(u.password));
  }
  // Only query values that look secret are masked in stored data (`?format=latest` is not);
  // error messages and logs lose every URL's query anyway (`redact`).
  for (const [k, v] of u.searchParams) if (SECRET_QUERY_NAME.test(k)) registerSecret(v);
}

/** Registers the values of environment variables whose names say they are secret. */
export function registerSecretEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const [name, value] of Object.entries(env)) if (SECRET_ENV_NAME.test(name)) registerSecret(value);
}

/** Config keys whose string values are secret (tokens, signing secrets, API keys, headers). */
const SECRET_KEY = /(secret|token|password|passwd|api[-_]?key|authorization|cookie|credential|private[-_]?key|signing)/i;

/**
 * Registers every secret a config names, before any of it is used: each `{env: NAME}`
 * (its value now), each string under a secret-sounding key or in `headers`, and the
 * userinfo and query of each URL.
 */
export function registerSecretsIn(value: unknown, env: NodeJS.ProcessEnv = process.env, secretKey = false): void {
  if (typeof value === 'string') {
    if (secretKey) registerSecret(value);
    registerUrlSecrets(value);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const v of value) registerSecretsIn(v, env, secretKey);
    return;
  }
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === 'env' && typeof o.env === 'string') {
    registerSecret(env[o.env]);
    return;
  }
  for (const [k, v] of Object.entries(o)) registerSecretsIn(v, env, secretKey || SECRET_KEY.test(k));
}

/** Masks every registered secret in text (used on everything written to the store). */
export function redactSecrets(text: string): string {
  if (pattern === null || text.length < MIN_SECRET_LENGTH) return text;
  pattern.lastIndex = 0;
  return pattern.test(text) ? text.replace(pattern, REDACTED) : text;
}

/** A URL's userinfo and query, wherever one appears in free text. */
const URL_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@"'<>]*@)?([^\s?#"'<>]*)(\?[^\s#"'<>]*)?/gi;

/** Masks registered secrets, and the userinfo and query of any URL (errors, stderr, logs). */
export function redact(text: string): string {
  const masked = redactSecrets(text);
  if (!masked.includes('://')) return masked;
  return masked.replace(URL_IN_TEXT, (_m, scheme: string, userinfo: string | undefined, rest: string, query: string | undefined) => {
    const user = userinfo ? `${userinfo.includes(':') ? userinfo.slice(0, userinfo.indexOf(':')) + ':***' : '***'}@` : '';
    return `${scheme}${user}${rest}${query ? '?***' : ''}`;
  });
}

/** `redact` applied to every string inside a JSON-like value (error details, log fields). */
export function redactDeep<T>(value: T, text: (s: string) => string = redact): T {
  if (typeof value === 'string') return text(value) as T;
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, text)) as T;
  if (value instanceof Error) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = redactDeep(v, text);
  return out as T;
}

/** Forgets every registered secret (tests only). */
export function clearSecretsForTests(): void {
  secrets.clear();
  pattern = null;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
