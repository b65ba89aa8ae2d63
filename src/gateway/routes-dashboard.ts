import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { GatewayModule } from './api.ts';
import { Authenticator, isAllowed } from './auth.ts';
import { PANELS } from './dashboard/panels.ts';
import { dashboardPage, loginPage } from './dashboard/page.ts';
import { ApiError } from './errors.ts';
import { BODY, SYSTEM, route } from './route-kit.ts';
import { clearedSessionCookie, crossOrigin, csrfMatches, csrfToken, sessionCookie, sessionSecret } from './session.ts';

/**
 * The dashboard (docs/observability.md): `/` serves the page to a signed-in browser
 * and the sign-in form to anyone else; `/login` exchanges a token (or a one-time link's
 * code) for the session cookie; `/dashboard.js` is the page script. The page then
 * reads the ordinary API with the cookie and follows the live event stream.
 */

const html = (description: string) => ({ description, content: { 'text/html': { schema: z.string() } } });
const seeOther = { description: 'signed in (or out): on to the dashboard', headers: { Location: { description: '/', schema: { type: 'string' as const } }, 'Set-Cookie': { description: 'the session cookie (HttpOnly, SameSite=Strict)', schema: { type: 'string' as const } } } };

export const dashboard = route({
  method: 'get',
  path: '/',
  operationId: 'dashboard',
  summary: 'The dashboard to a browser with a session; the sign-in form otherwise',
  tags: ['dashboard'],
  'x-spine-permission': 'public',
  errors: [],
  responses: { 200: html('the dashboard, or the sign-in form') },
});

export const loginLink = route({
  method: 'get',
  path: '/login',
  operationId: 'loginLink',
  summary: 'A one-time login link (printed by `spine up`): its code is exchanged for the session cookie, once',
  tags: ['dashboard'],
  'x-spine-permission': 'public',
  errors: [...SYSTEM],
  request: { query: z.object({ code: z.string().max(200).optional() }) },
  responses: { 303: seeOther, 401: html('the code is unknown, used or expired: the sign-in form') },
});

export const login = route({
  method: 'post',
  path: '/login',
  operationId: 'login',
  summary: 'Exchanges an API token for the session cookie (form field or JSON `token`)',
  tags: ['dashboard'],
  'x-spine-permission': 'public',
  errors: ['FORBIDDEN', ...BODY, ...SYSTEM],
  request: {
    body: {
      content: {
        'application/x-www-form-urlencoded': { schema: z.object({ token: z.string() }) },
        'application/json': { schema: z.object({ token: z.string() }) },
      },
    },
  },
  responses: { 303: seeOther, 401: html('the token is invalid or revoked: the sign-in form again') },
});

export const logout = route({
  method: 'post',
  path: '/logout',
  operationId: 'logout',
  summary: "Ends the browser session (needs the page's CSRF token as form field `csrf` or the x-csrf-token header)",
  tags: ['dashboard'],
  'x-spine-permission': 'public',
  errors: ['FORBIDDEN', ...BODY, ...SYSTEM],
  request: { body: { content: { 'application/x-www-form-urlencoded': { schema: z.object({ csrf: z.string().optional() }) } } } },
  responses: { 303: seeOther },
});

export const dashboardScript = route({
  method: 'get',
  path: '/dashboard.js',
  operationId: 'dashboardScript',
  summary: "The dashboard's page script",
  tags: ['dashboard'],
  'x-spine-permission': 'public',
  errors: [],
  responses: { 200: { description: 'JavaScript', content: { 'text/javascript': { schema: z.string() } } }, 304: { description: 'not modified (ETag)' } },
});

const SCRIPT = readFileSync(new URL('./dashboard/client.js', import.meta.url), 'utf8');
const SCRIPT_ETAG = `"${createHash('sha256').update(SCRIPT).digest('base64url').slice(0, 16)}"`;
const PAGE_HEADERS = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY', 'content-security-policy': "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'" };

export const dashboardRoutes: GatewayModule = (api) => {
  const { app, store, clock } = api;
  const bind = api.bind.bind(api);
  const auth = new Authenticator(store.tokens, () => clock.now());
  const secure = (c: Context) => new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto') === 'https';
  const page = (c: Context, body: string, status: 200 | 401, headers: Record<string, string> = {}) => c.body(body, status, { ...PAGE_HEADERS, ...headers });
  const signedIn = (c: Context, secret: string) => c.body(null, 303, { location: '/', 'set-cookie': sessionCookie(secret, secure(c)), 'cache-control': 'no-store' });

  app.openapi(bind(dashboard), async (c) => {
    const secret = sessionSecret(c.req.header('cookie'));
    const principal = secret ? await auth.resolve(secret) : null;
    if (!secret || !principal || !isAllowed(principal, 'read')) {
      return page(c, loginPage(secret ? { error: 'Your session ended (the token was revoked or cannot read). Sign in again.' } : {}), 200, secret ? { 'set-cookie': clearedSessionCookie() } : {});
    }
    return page(c, dashboardPage({ principal: principal.name, scopes: principal.scopes, csrf: csrfToken(secret), panels: PANELS }), 200);
  });

  app.openapi(bind(loginLink), async (c) => {
    const code = c.req.valid('query').code;
    const secret = code ? api.logins.redeem(code) : null;
    if (!secret || !(await auth.resolve(secret))) return page(c, loginPage({ error: 'This login link is unknown, used or expired. Sign in with a token.' }), 401);
    return signedIn(c, secret);
  });

  app.openapi(bind(login), async (c) => {
    // A login made from another site's page would sign the browser in as someone else.
    if (crossOrigin(c.req.raw.headers, c.req.url)) throw new ApiError('FORBIDDEN', 'sign in from the dashboard itself (cross-origin request)', { needed: ['same origin'] });
    const type = c.req.header('content-type') ?? '';
    let token: unknown;
    if (type.includes('application/json')) token = ((await api.readJson(c)) as { token?: unknown } | null)?.token;
    else token = (await c.req.parseBody())['token'];
    const principal = typeof token === 'string' && token !== '' ? await auth.resolve(token.trim()) : null;
    if (!principal || typeof token !== 'string') return page(c, loginPage({ error: 'That token is invalid or revoked.' }), 401);
    return signedIn(c, token.trim());
  });

  app.openapi(bind(logout), async (c) => {
    // A form or nothing, as declared: any other body is the caller's mistake, said so even without a session.
    const type = c.req.header('content-type');
    if (type && !/^(application\/x-www-form-urlencoded|multipart\/form-data)\b/i.test(type)) {
      throw new ApiError('UNSUPPORTED_MEDIA_TYPE', `sign-out takes a form (application/x-www-form-urlencoded) or no body, not ${type.split(';')[0]}`);
    }
    const secret = sessionSecret(c.req.header('cookie'));
    if (secret) {
      const form = await c.req.parseBody();
      const sent = c.req.header('x-csrf-token') ?? (typeof form['csrf'] === 'string' ? form['csrf'] : null);
      if (crossOrigin(c.req.raw.headers, c.req.url) || !csrfMatches(secret, sent)) throw new ApiError('FORBIDDEN', "signing out needs this origin and the page's CSRF token", { needed: ['csrf'] });
    }
    return c.body(null, 303, { location: '/', 'set-cookie': clearedSessionCookie(), 'cache-control': 'no-store' });
  });

  app.openapi(bind(dashboardScript), (c) => {
    if (c.req.header('if-none-match') === SCRIPT_ETAG) return c.body(null, 304, { etag: SCRIPT_ETAG });
    return c.body(SCRIPT, 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache', etag: SCRIPT_ETAG });
  });
};
