import { hash, randomBytes } from 'node:crypto';
import { InvalidInputError } from '../core/errors.ts';
import type { ApiToken, TokenStore } from '../store/tokens.ts';
import { isLoopbackHost } from './config.ts';

/**
 * Gateway auth: bearer tokens with scopes. A token is `spn_` + 32 random bytes
 * (base64url); only its SHA-256 is stored. Scopes:
 *   admin           everything
 *   operator        submit, cancel, retry, decide approvals, read
 *   viewer          read only
 *   ingress:<ch>    POST /v1/envelopes with channel <ch> only; ingress:mcp also
 *                   POST /v1/mcp (whose tools check scopes themselves: submit_work)
 */

export const TOKEN_PREFIX = 'spn_';

/**
 * What a route needs. `submit` is also met by `ingress:<channel>` for that channel;
 * `mcp` (the MCP endpoint, whose tools check scopes themselves) by `read` or `ingress:mcp`.
 */
export type Permission = 'public' | 'read' | 'submit' | 'operate' | 'admin' | 'mcp';

export const ROLE_SCOPES = ['admin', 'operator', 'viewer'] as const;
const CHANNEL_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

/** Who is calling: a token, or `anonymous` on an explicitly insecure loopback gateway. */
export interface Principal {
  name: string;
  tokenId: string | null;
  scopes: readonly string[];
}

export const ANONYMOUS: Principal = { name: 'anonymous', tokenId: null, scopes: ['admin'] };

export function newTokenSecret(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function hashToken(secret: string): string {
  // One-shot: no Hash object per request (the same hex SHA-256 of the UTF-8 text).
  return hash('sha256', secret, 'hex');
}

/** Checks one `--scope` value; throws InvalidInputError naming it. */
export function parseScope(scope: string): string {
  if ((ROLE_SCOPES as readonly string[]).includes(scope)) return scope;
  if (scope.startsWith('ingress:')) {
    const channel = scope.slice('ingress:'.length);
    if (CHANNEL_NAME.test(channel)) return scope;
    throw new InvalidInputError('--scope', `"${scope}": the channel after ingress: must be a lowercase name like ingress:api or ingress:webhook`);
  }
  throw new InvalidInputError('--scope', `unknown scope "${scope}" (admin, operator, viewer, ingress:<channel>)`);
}

export function isAllowed(p: Principal, need: Permission, channel?: string): boolean {
  const s = p.scopes;
  if (need === 'public') return true;
  if (s.includes('admin')) return true;
  switch (need) {
    case 'admin':
      return false;
    case 'operate':
      return s.includes('operator');
    case 'read':
      return s.includes('operator') || s.includes('viewer');
    case 'mcp':
      return s.includes('operator') || s.includes('viewer') || s.includes('ingress:mcp');
    case 'submit':
      return s.includes('operator') || (channel !== undefined && s.includes(`ingress:${channel}`)) || (channel === undefined && s.some((x) => x.startsWith('ingress:')));
  }
}

/** The scopes that would allow `need`, for 403 messages. */
export function scopesFor(need: Permission, channel?: string): string[] {
  switch (need) {
    case 'public':
      return [];
    case 'admin':
      return ['admin'];
    case 'operate':
      return ['operator', 'admin'];
    case 'read':
      return ['viewer', 'operator', 'admin'];
    case 'mcp':
      return ['viewer', 'ingress:mcp', 'operator', 'admin'];
    case 'submit':
      return [channel ? `ingress:${channel}` : 'ingress:<channel>', 'operator', 'admin'];
  }
}

/** `Authorization: Bearer <token>`; null when absent; '' when present but malformed. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m ? m[1]! : '';
}

/**
 * Resolves tokens to principals. Every request's token is read from the store after
 * the request arrived (a revoked token stops working at once); `lastUsedAt` is written
 * at most once a minute per token.
 *
 * Under load one token comes in many requests per turn of the event loop, and a read
 * per request was ~13% of an envelope's CPU, so they share reads: the first request (the
 * leader) reads at once, and those arriving with the same token until the loop
 * reaches its check phase share one later read (setImmediate), which starts only
 * after all of them arrived. The leader queues that read before its own store work,
 * so the followers still make the leader's group commit.
 */
export class Authenticator {
  private readonly tokens: TokenStore;
  private readonly now: () => number;
  private readonly touched = new Map<string, number>();
  /** Per token hash, the read that requests arriving now will share (not started yet). */
  private readonly next = new Map<string, SharedRead>();

  constructor(tokens: TokenStore, now: () => number) {
    this.tokens = tokens;
    this.now = now;
  }

  async resolve(secret: string): Promise<Principal | null> {
    if (!secret.startsWith(TOKEN_PREFIX) || secret.length > 256) return null;
    const token = await this.lookup(secret);
    if (!token) return null;
    this.touch(token);
    return { name: token.name, tokenId: token.id, scopes: token.scopes };
  }

  private lookup(secret: string): Promise<ApiToken | null> {
    // Hashed once per request, and the hash (never the secret) keys the shared reads.
    const hash = hashToken(secret);
    const shared = this.next.get(hash);
    if (shared) return shared.join();
    const read = new SharedRead(() => this.tokens.findByHash(hash));
    this.next.set(hash, read);
    setImmediate(() => {
      // Off the map before it reads: a request arriving from now on is a new leader.
      this.next.delete(hash);
      read.start();
    });
    return this.tokens.findByHash(hash);
  }

  private touch(token: ApiToken): void {
    const now = this.now();
    const last = this.touched.get(token.id) ?? token.lastUsedAt ?? 0;
    if (now - last < 60_000) return;
    this.touched.set(token.id, now);
    // Best effort: a failed bookkeeping write must not fail the request.
    this.tokens.touch(token.id, now).catch(() => this.touched.delete(token.id));
  }
}

/**
 * Anonymous access is for a developer's own machine: the request must name a
 * loopback Host (defeats DNS rebinding) and, if a browser sent an Origin, the
 * gateway's own (defeats requests from other web pages, local ones included).
 */
export function isLocalRequest(headers: Headers): boolean {
  const host = headers.get('host');
  if (!host || !isLoopbackHost(stripPort(host))) return false;
  const origin = headers.get('origin');
  if (origin === null) return true;
  // A browser page counts as local only when it is served by this gateway (same host
  // and port): a page on another local port (a dev server, anything) is another origin.
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

function stripPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const i = host.lastIndexOf(':');
  return i > 0 && host.indexOf(':') === i ? host.slice(0, i) : host;
}

/** One store read for the requests that join it before it starts; none if nobody joins. */
class SharedRead {
  private readonly read: () => Promise<ApiToken | null>;
  private waiting: PromiseWithResolvers<ApiToken | null> | null = null;

  constructor(read: () => Promise<ApiToken | null>) {
    this.read = read;
  }

  join(): Promise<ApiToken | null> {
    this.waiting ??= Promise.withResolvers();
    return this.waiting.promise;
  }

  start(): void {
    if (this.waiting) this.read().then(this.waiting.resolve, this.waiting.reject);
  }
}
