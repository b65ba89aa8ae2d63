import { OpenAPIHono, type RouteConfig, type z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import type { UpgradeWebSocket } from 'hono/ws';
import type { WebSocket } from 'ws';
import type { ChannelAdapter } from '../core/channel.ts';
import type { AuditKeys } from '../audit/checkpoint.ts';
import type { Clock } from '../core/clock.ts';
import { ERROR_CATALOGUE, InvalidInputError, StoreUnavailableError } from '../core/errors.ts';
import { ceilingRaise } from '../policy/raise.ts';
import { newId } from '../core/ids.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import type { Json } from '../core/types.ts';
import type { Intake } from '../intake/intake.ts';
import type { EnvelopeRecord, Store } from '../store/store.ts';
import { ANONYMOUS, Authenticator, bearerToken, isAllowed, isLocalRequest, scopesFor, type Permission, type Principal } from './auth.ts';
import { limitBody, readJson, readText } from './body.ts';
import type { GatewaySettings } from './config.ts';
import type { AgentDirectory } from './directory.ts';
import { ApiError, errorHeaders, forbidden, invalidRequest, toApiError } from './errors.ts';
import { EventHub } from './events.ts';
import type { createMcpHttpHandler } from './mcp.ts';
import { resourceMetadataUrl } from './routes-oauth.ts';
import { runUsage } from '../engine/usage.ts';
import { totalUsage } from '../core/usage.ts';
import type { createA2aHttpHandler } from './a2a.ts';
import * as routes from './routes.ts';
import { check, QUERY_DEFAULTS, requestIssues } from './schemas.ts';
import { sseResponse, streamCursor, streamToWebSocket } from './stream.ts';
import { allowedMethods } from './methods.ts';
import type { Bound, Env, GatewayApi } from './api.ts';
import { MODULES } from './modules.ts';
import { CSRF_HEADER, LoginCodes, crossOrigin, csrfMatches, sessionSecret } from './session.ts';
import type { MetricsExposition } from '../core/meter.ts';
import type { MeshShim } from '../engine/mesh-shim.ts';
import { submitFromApi } from './submit.ts';

export interface GatewayDeps {
  store: Store;
  intake: Intake;
  settings: GatewaySettings;
  /** Channel adapters by name, for `POST /v1/channels/:channel/:account` (a function: read per request, so a config reload applies). */
  channels?: ReadonlyMap<string, ChannelAdapter> | (() => ReadonlyMap<string, ChannelAdapter>);
  clock: Clock;
  log?: Logger;
  /** The agents, for MCP's list_agents and A2A Agent Cards (a function: read per request, so a reload applies). */
  agents?: AgentDirectory;
  /**
   * The WebSocket upgrade of the server the app runs on (server.ts passes
   * @hono/node-server's); its sockets are `ws` WebSockets. Without it, `GET /v1/ws`
   * is not served.
   */
  upgradeWebSocket?: UpgradeWebSocket<unknown>;
  /** The audit keys from config, for checkpoint signatures (a function: a reload applies). */
  auditKeys?: () => AuditKeys | null;
  /** What GET /metrics serves (the runtime's meter); without it, /metrics answers 404. */
  metrics?: MetricsExposition;
  /** The mesh shim of this process's workers: external agents call their mesh paths mid-turn (POST /v1/mesh/call, MCP call_agent). */
  shim?: MeshShim;
}

export type OpenApiDocument = ReturnType<OpenAPIHono['getOpenAPI31Document']>;


/** A gateway: its Hono app (Web Request → Response), the live event hub, and drain control. */
export interface Gateway {
  app: OpenAPIHono<Env>;
  events: EventHub;
  /** The OpenAPI 3.1 document, generated from the route declarations (routes.ts). */
  document(): OpenApiDocument;
  /** Starts draining: /readyz answers 503, new event streams are refused, open ones end. */
  drain(): void;
  readonly draining: boolean;
  /** One-time dashboard login links (session.ts). */
  logins: LoginCodes;
}

/**
 * Builds the gateway's HTTP API (docs/gateway.md) from the route declarations of
 * routes.ts. Every route but the health checks and the channel webhooks (which verify
 * the platform's signature instead) needs a bearer token with the route's
 * `x-spine-permission`, checked before anything is read. Bad input changes nothing and
 * is answered with `{"error": {code, message, …}}` and the catalogue's status for its
 * code; a 500 means a bug.
 */
export function createGateway(deps: GatewayDeps): Gateway {
  const { store, intake, settings, clock } = deps;
  const log = deps.log ?? silentLogger;
  const noChannels: ReadonlyMap<string, ChannelAdapter> = new Map();
  const channelMap = typeof deps.channels === 'function' ? deps.channels : () => (deps.channels as ReadonlyMap<string, ChannelAdapter> | undefined) ?? noChannels;
  const auth = new Authenticator(store.tokens, () => clock.now());
  const events = new EventHub(store, { pollMs: settings.eventPollMs, log });
  let draining = false;
  // A path parameter or query that breaks its declared schema is a 400 naming each bad path.
  const app = new OpenAPIHono<Env>({
    defaultHook: (result) => {
      if (!result.success) throw invalidRequest(requestIssues(result.error, result.target), result.target);
    },
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', routes.SECURITY_SCHEME);
  const bodyLimit = limitBody(settings.bodyLimitBytes);

  /** Authenticates the caller and checks the permission; 401/403 before anything is read or changed. */
  const guard =
    (need: Permission, queryToken: boolean): MiddlewareHandler<Env> =>
    async (c, next) => {
      if (need !== 'public') {
        const principal = await authenticate(c, queryToken);
        if (!isAllowed(principal, need)) throw forbidden(principal, scopesFor(need), `${c.req.method} ${c.req.routePath}`);
        c.set('principal', principal);
      }
      // PostgreSQL cannot hold U+0000: a NUL in an id or a query value is refused here, alike on both backends.
      if (/%00/i.test(c.req.url)) throw new ApiError('INPUT_LIMIT', 'the path or query contains a NUL character (%00)', { details: { limit: 'nul', path: 'url' } });
      await next();
    };

  async function authenticate(c: Context<Env>, queryToken: boolean): Promise<Principal> {
    let secret = bearerToken(c.req.header('authorization'));
    if (secret === null && queryToken) secret = c.req.query('access_token') ?? null;
    const unauthorized = (message: string) => unauthenticated(message, c.req.url);
    if (secret === '') throw unauthorized('malformed Authorization header: expected "Bearer <token>"');
    if (secret === null) secret = sessionFromCookie(c);
    if (secret === null) {
      if (settings.allowAnonymousLoopback && isLocalRequest(c.req.raw.headers)) return ANONYMOUS;
      const hint = (await store.tokens.anyLive())
        ? ''
        : ' No API token exists yet: create one with `spine tokens create --name <name> --scope admin`.';
      throw unauthorized(`missing bearer token: send "Authorization: Bearer <token>".${hint}`);
    }
    const principal = await auth.resolve(secret);
    if (!principal) throw unauthorized('invalid or revoked token');
    return principal;
  }

  /**
   * The dashboard's session cookie (session.ts) stands in for a bearer token; a state
   * change made with it must come from this origin and carry the page's CSRF token.
   */
  function sessionFromCookie(c: Context<Env>): string | null {
    const secret = sessionSecret(c.req.header('cookie'));
    if (secret === null) return null;
    const m = c.req.method;
    if (m !== 'GET' && m !== 'HEAD' && m !== 'OPTIONS') {
      if (crossOrigin(c.req.raw.headers, c.req.url) || !csrfMatches(secret, c.req.header(CSRF_HEADER))) {
        throw new ApiError('FORBIDDEN', `a change made with the dashboard's session cookie needs this origin and the page's ${CSRF_HEADER} header`, { needed: [CSRF_HEADER] });
      }
    }
    return secret;
  }

  /**
   * A declared route, ready to bind: the guard its permission asks for, then (if it has
   * a body) the body limit. Path and query are validated by the library; a body and
   * headers are documented as declared but read by the handler with the declared
   * schemas: JSON routes take JSON whatever the Content-Type (body.ts), channel
   * webhooks need the exact bytes, and a header is one lookup (the library's header
   * validation copies every header of every request).
   */
  function bind<R extends RouteConfig & { 'x-spine-permission': Permission }>(route: R): Bound<R> {
    const { body, headers, ...request } = route.request ?? {};
    const ownReading = body !== undefined || headers !== undefined;
    if (ownReading) app.openAPIRegistry.registerPath(route);
    const queryToken = request.query !== undefined && 'shape' in request.query && 'access_token' in request.query.shape;
    return {
      ...route,
      hide: ownReading,
      request: request as Omit<NonNullable<R['request']>, 'body' | 'headers'>,
      middleware: [guard(route['x-spine-permission'], queryToken), ...(body ? [bodyLimit] : [])],
    };
  }

  // ── errors ──────────────────────────────────────────────────────────────────
  app.onError((err, c) => {
    const e = toApiError(err);
    if (e.code === 'INTERNAL') {
      log.error('gateway: request failed', { method: c.req.method, path: c.req.path, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    }
    for (const [k, v] of Object.entries(errorHeaders(e))) c.header(k, v);
    return c.json(e.body(), e.status);
  });
  app.notFound((c) => {
    const allow = allowedMethods(app.routes, c.req.path);
    if (allow.length > 0) {
      throw new ApiError('METHOD_NOT_ALLOWED', `${c.req.method} is not served on ${c.req.path}; allowed: ${allow.join(', ')}`, {}, { Allow: allow.join(', ') });
    }
    throw new ApiError('NOT_FOUND', `no route ${c.req.method} ${c.req.path}`);
  });

  // ── health ──────────────────────────────────────────────────────────────────
  app.openapi(bind(routes.healthz), (c) => c.json({ ok: true as const }, 200));
  app.openapi(bind(routes.readyz), async (c) => {
    const notReady = (e: ApiError) => {
      for (const [k, v] of Object.entries(errorHeaders(e))) c.header(k, v);
      return c.json({ ready: false as const, error: { code: e.code, message: e.message } }, 503);
    };
    if (draining) return notReady(new ApiError('DRAINING', 'the gateway is shutting down'));
    try {
      await store.assertSchemaCurrent();
      // Ready means able to take work: a store that cannot commit a write (disk full, read-only) is not.
      await store.checkWritable(clock.now());
      return c.json({ ready: true as const, schema: await store.schemaStatus() }, 200);
    } catch (err) {
      const e = toApiError(err);
      // Any other failure of the store's checks means it cannot be used now.
      return notReady(e.code === 'INTERNAL' ? toApiError(new StoreUnavailableError(err instanceof Error ? err.message : String(err), err)) : e);
    }
  });

  // Generated once, on first use: the routes are all declared by then.
  let document: OpenApiDocument | null = null;
  const openApiDocument = () => (document ??= app.getOpenAPI31Document(routes.DOCUMENT));
  app.openapi(bind(routes.openapi), (c) => c.json(openApiDocument() as { openapi: '3.1.0' }, 200));

  // ── intake ──────────────────────────────────────────────────────────────────
  const idempotencyKey = routes.submitEnvelope.request.headers.shape['idempotency-key'];
  app.openapi(bind(routes.submitEnvelope), async (c) => {
    const principal = c.get('principal');
    const header = c.req.header('idempotency-key');
    if (!idempotencyKey.safeParse(header).success) throw new ApiError('INVALID_IDEMPOTENCY_KEY', 'Idempotency-Key must be 1–255 printable ASCII characters');
    const input = check(routes.submitEnvelope.request.body.content['application/json'].schema, await readJson(c), 'body');
    const key = header ?? newId('idem');
    const result = await submitFromApi(intake, principal, input, key);
    c.header('Idempotency-Key', key);
    const meta = { idempotencyKey: key, ...(header === undefined ? { idempotencyKeyGenerated: true as const } : {}), ...(result.created ? {} : { duplicate: true as const }) };
    // The route declares UNROUTABLE's catalogue status (the OpenAPI test checks each code's status).
    if (result.envelope.state === 'unroutable') return c.json(unroutable(result.envelope, meta), ERROR_CATALOGUE.UNROUTABLE.status as 422);
    if (result.run) c.header('Location', `/v1/runs/${result.run.id}`);
    const body = { envelope: result.envelope, run: result.run, ...meta };
    return result.created ? c.json(body, 202) : c.json(body, 200);
  });

  app.openapi(bind(routes.getEnvelope), async (c) => {
    const { id } = c.req.valid('param');
    const envelope = await store.envelopes.get(id);
    if (!envelope) throw notFound('envelope', id);
    return c.json({ envelope }, 200);
  });

  app.openapi(bind(routes.channelWebhook), async (c) => {
    const { channel: name, account } = c.req.valid('param');
    const channels = channelMap();
    const adapter = channels.get(name);
    if (!adapter) {
      throw new ApiError('UNKNOWN_CHANNEL', `unknown channel "${name}" (configured: ${[...channels.keys()].join(', ') || 'none'})`);
    }
    const rawBody = await readText(c);
    const result = await adapter.receive({ account, headers: c.req.raw.headers, rawBody, now: clock.now() });
    if (result.kind !== 'envelope') return untyped(reply(c, result.status, result.body));
    let envelope = result.envelope;
    if (envelope.replyTo === null && adapter.replyTarget) envelope = { ...envelope, replyTo: adapter.replyTarget(envelope) };
    // Durable before acknowledged: the platform's ack goes out only after the commit.
    await intake.accept(envelope, { actor: `channel:${name}` });
    return untyped(reply(c, result.ack.status, result.ack.body));
  });

  // ── runs and tasks ──────────────────────────────────────────────────────────
  app.openapi(bind(routes.listRuns), async (c) => {
    const q = c.req.valid('query');
    const limit = q.limit ?? QUERY_DEFAULTS.runs;
    const rows = await store.runs.list({ limit: limit + 1, ...(q.state ? { state: q.state } : {}), ...(q.agent ? { agent: q.agent } : {}), ...(q.cursor ? { before: q.cursor } : {}) });
    const runs = rows.slice(0, limit);
    return c.json({ runs, next: rows.length > limit ? runs.at(-1)!.id : null }, 200);
  });

  app.openapi(bind(routes.getRun), async (c) => {
    const { id } = c.req.valid('param');
    const run = await store.runs.get(id);
    if (!run) throw notFound('run', id);
    const [tasks, envelope, usage] = await Promise.all([store.tasks.list({ runId: id, limit: 10_000 }), run.envelopeId ? store.envelopes.get(run.envelopeId) : null, runUsage(store, id)]);
    return c.json({ run, tasks, envelope, usage }, 200);
  });

  app.openapi(bind(routes.cancelRun), async (c) => {
    const { id } = c.req.valid('param');
    const input = check(routes.cancelRun.request.body.content['application/json'].schema, await readJson(c, { empty: {} }), 'body');
    const cancelledTasks = await store.runs.cancel(id, clock.now(), `token:${c.get('principal').name}`, input.reason);
    return c.json({ run: await store.runs.get(id), cancelledTasks }, 200);
  });

  app.openapi(bind(routes.retryRun), async (c) => {
    const run = await store.runs.retry(c.req.valid('param').id, clock.now(), `token:${c.get('principal').name}`);
    return c.json({ run }, 200);
  });

  app.openapi(bind(routes.listTasks), async (c) => {
    const q = c.req.valid('query');
    if (q.run && !(await store.runs.get(q.run))) throw notFound('run', q.run);
    const tasks = await store.tasks.list({ limit: q.limit ?? QUERY_DEFAULTS.tasks, ...(q.run ? { runId: q.run } : {}), ...(q.state ? { state: q.state } : {}) });
    return c.json({ tasks }, 200);
  });

  app.openapi(bind(routes.getTask), async (c) => {
    const { id } = c.req.valid('param');
    const task = await store.tasks.get(id);
    if (!task) throw notFound('task', id);
    const [turns, effects, used] = await Promise.all([store.tasks.turns(id), store.tasks.effects({ taskId: id }), store.tasks.usage({ taskId: id })]);
    return c.json({ task, turns, effects, usage: { turns: used, total: totalUsage(used) } }, 200);
  });

  // ── approvals ───────────────────────────────────────────────────────────────
  app.openapi(bind(routes.listApprovals), async (c) => {
    const q = c.req.valid('query');
    const state = q.state ?? 'pending';
    const approvals = await store.approvals.list({
      limit: q.limit ?? QUERY_DEFAULTS.approvals,
      ...(state === 'all' ? {} : { state }),
      ...(q.run ? { runId: q.run } : {}),
    });
    return c.json({ approvals }, 200);
  });

  app.openapi(bind(routes.decideApproval), async (c) => {
    const { id } = c.req.valid('param');
    const input = check(routes.decideApproval.request.body.content['application/json'].schema, await readJson(c), 'body');
    if (input.raiseTo !== undefined && !input.approve) throw new InvalidInputError('raiseTo', 'a ceiling is raised only when approving');
    const raise = input.raiseTo === undefined ? undefined : await ceilingRaise(store, intake.registry.policy.policy, id, input.raiseTo, 'raiseTo', clock.now());
    const approval = await store.approvals.decide(
      id,
      { approve: input.approve, actor: c.get('principal').name, ...(input.reason !== undefined ? { reason: input.reason } : {}), ...(raise ? { raise } : {}) },
      clock.now(),
    );
    return c.json({ approval }, 200);
  });

  // ── audit and the live event stream ─────────────────────────────────────────
  app.openapi(bind(routes.listAudit), async (c) => {
    const q = c.req.valid('query');
    const limit = q.limit ?? QUERY_DEFAULTS.audit;
    const rows = await store.audit.list({ limit: limit + 1, afterSeq: q.after ?? 0, ...(q.run ? { runId: q.run } : {}) });
    const events = rows.slice(0, limit);
    return c.json({ events, next: rows.length > limit ? events.at(-1)!.seq : null }, 200);
  });

  /** Checks a stream request (cursor, run filter) before any bytes of the stream go out. */
  async function streamStart(query: { after?: string | undefined; run?: string | undefined }, lastEventId: string | undefined) {
    if (draining) throw new ApiError('DRAINING', 'the gateway is shutting down; reconnect to another instance or retry shortly');
    const after = streamCursor(query, lastEventId);
    if (after !== null) {
      const newest = await store.audit.latestSeq();
      if (after > newest) {
        // Waiting silently would skip events once the log grows past it: a cursor from another (or a reset) store.
        throw new ApiError('INVALID_CURSOR', `cursor ${after} is beyond the newest event (${newest}): it belongs to another or a reset store; resume with after=0 or no cursor`, {
          newest,
        });
      }
    }
    if (query.run && !(await store.runs.get(query.run))) throw notFound('run', query.run);
    return { after, runId: query.run ?? null };
  }

  app.openapi(bind(routes.eventStream), async (c) => sseResponse(events, { ...(await streamStart(c.req.valid('query'), c.req.header('last-event-id'))), log }));

  const upgrade = deps.upgradeWebSocket;
  if (upgrade) {
    app.openapi(bind(routes.eventSocket), async (c, next) => {
      const stream = await streamStart(c.req.valid('query'), undefined);
      if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
        throw new ApiError('UPGRADE_REQUIRED', 'GET /v1/ws is a WebSocket endpoint: connect with a WebSocket client (or use GET /v1/events for SSE)', {}, { Upgrade: 'websocket' });
      }
      const handler = upgrade(() => ({ onOpen: (_evt, ws) => streamToWebSocket(events, ws.raw as WebSocket, { ...stream, log }) }));
      return untyped((await handler(c as unknown as Parameters<typeof handler>[0], next)) as Response);
    });
  }

  // ── MCP (docs/mcp.md) ───────────────────────────────────────────────────────
  // Each tool checks the token's scopes itself (reading: viewer; submitting to an agent, deciding: operator).
  // The MCP and A2A SDKs load on the first request that needs them: a gateway nobody
  // calls that way does not hold them (about 100 modules, jose included).
  let mcpHandler: Promise<ReturnType<typeof createMcpHttpHandler>> | undefined;
  const mcp = () => (mcpHandler ??= import('./mcp.ts').then((m) => m.createMcpHttpHandler({ store, intake, clock, agents: deps.agents, ...(deps.shim ? { shim: deps.shim } : {}) })));
  app.openapi(bind(routes.mcp), async (c) => untyped(await (await mcp()).post(c.req.raw, c.get('principal'), await readJson(c, { ownMediaType: true }))));

  // ── A2A (docs/a2a.md): every agent is an A2A agent; sending it work addresses it directly, so operator ──
  let a2aHandler: Promise<ReturnType<typeof createA2aHttpHandler>> | undefined;
  const a2a = () => (a2aHandler ??= import('./a2a.ts').then((m) => m.createA2aHttpHandler({ store, intake, clock, agents: deps.agents })));
  const a2aBase = (c: Context, agent: string) => `${new URL(c.req.url).origin}/v1/a2a/${encodeURIComponent(agent)}`;
  app.openapi(bind(routes.a2aAgentCard), async (c) => untyped((await a2a()).card(c.req.valid('param').agent, a2aBase(c, c.req.valid('param').agent), c.req.header('a2a-version'))));
  app.openapi(bind(routes.a2aJsonRpc), async (c) => {
    const { agent } = c.req.valid('param');
    return untyped(await (await a2a()).rpc(agent, a2aBase(c, agent), c.get('principal'), await readJson(c), c.req.raw));
  });

  // The layers' own routes (memory, briefs, audit verification, …), each area in its routes-*.ts.
  const logins = new LoginCodes(() => clock.now());
  const api: GatewayApi = { app, bind, store, intake, clock, log, readJson, notFound, auditKeys: deps.auditKeys, events, logins, authenticate: (c) => authenticate(c, false), metrics: deps.metrics ?? null, shim: deps.shim ?? null };
  for (const mount of MODULES) mount(api);

  return {
    app,
    events,
    document: openApiDocument,
    drain() {
      draining = true;
      events.close();
    },
    get draining() {
      return draining;
    },
    logins,
  };
}

/** A 401 whose challenge points MCP clients at the protected resource metadata (RFC 9728). */
function unauthenticated(message: string, requestUrl: string): ApiError {
  return new ApiError('UNAUTHENTICATED', message, {}, { 'WWW-Authenticate': `Bearer realm="spine", resource_metadata="${resourceMetadataUrl(requestUrl)}"` });
}

function notFound(what: string, id: string): ApiError {
  return new ApiError('NOT_FOUND', `${what} "${id}" not found`);
}

/** The 422 answer for an envelope stored unroutable: the error, the envelope with its routing decision, and no run. */
function unroutable(e: EnvelopeRecord, meta: { idempotencyKey: string; idempotencyKeyGenerated?: true; duplicate?: true }): z.infer<typeof routes.unroutable> {
  return {
    error: { code: 'UNROUTABLE' as const, message: e.error?.message ?? 'no binding matches this envelope', envelope: e.id, decision: e.route },
    envelope: e,
    run: null,
    ...meta,
  };
}

/** A Response built by an SDK or a channel adapter: its route documents the body; the handler's typed answers cannot check it. */
function untyped(res: Response): never {
  return res as never;
}

/** Answers a channel with the platform's expected reply: JSON, plain text or empty. */
function reply(c: Context, status: number, body: Json | string | null): Response {
  if (body === null) return c.body(null, status as 200);
  if (typeof body === 'string') return c.text(body, status as 200);
  return c.json(body, status as 200);
}
