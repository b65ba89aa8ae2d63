import type { HttpBindings } from '@hono/node-server';
import { upgradeWebSocket } from '@hono/node-server';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import type { WebSocket } from 'ws';
import { stableJson } from '../core/json.ts';
import type { Clock } from '../core/clock.ts';
import { newId } from '../core/ids.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import type { Json } from '../core/types.ts';
import type { ChannelAdapter } from '../core/channel.ts';
import type { Envelope } from '../core/envelope.ts';
import { apiEnvelopeSchema, envelopeFromApi } from '../intake/envelope.ts';
import type { Intake } from '../intake/intake.ts';
import type { AcceptResult, EnvelopeRecord, Store } from '../store/store.ts';
import { ANONYMOUS, Authenticator, bearerToken, isAllowed, isLocalRequest, scopesFor, type Permission, type Principal } from './auth.ts';
import { parseJsonBody, readBody } from './body.ts';
import type { GatewaySettings } from './config.ts';
import type { AgentDirectory } from './directory.ts';
import { ApiError, toApiError } from './errors.ts';
import { EventHub } from './events.ts';
import { createMcpHttpHandler } from './mcp.ts';
import { createA2aHttpHandler } from './a2a.ts';
import { openApiDocument } from './openapi.ts';
import { approvalsQuery, auditQuery, cancelBody, check, decisionBody, QUERY_DEFAULTS, runsQuery, streamQuery, tasksQuery } from './schemas.ts';
import { sseResponse, streamCursor, streamToWebSocket } from './stream.ts';

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
}

type Env = {
  Bindings: Partial<HttpBindings>;
  Variables: { principal: Principal; stream: { after: number | null; runId: string | null } };
};

/** A gateway: its Hono app (Web Request → Response), the live event hub, and drain control. */
export interface Gateway {
  app: Hono<Env>;
  events: EventHub;
  /** Starts draining: /readyz answers 503, new event streams are refused, open ones end. */
  drain(): void;
  readonly draining: boolean;
}

/** Largest idempotency key accepted, in characters. */
const MAX_KEY = 255;

/**
 * Builds the gateway's HTTP API (docs/gateway.md). Every route but the health checks
 * and the channel webhooks (which verify the platform's signature instead) needs a
 * bearer token with the right scope. Bad input changes nothing and is answered with
 * `{"error": {code, message, …}}` and a 4xx.
 */
export function createGateway(deps: GatewayDeps): Gateway {
  const { store, intake, settings, clock } = deps;
  const log = deps.log ?? silentLogger;
  const noChannels: ReadonlyMap<string, ChannelAdapter> = new Map();
  const channelMap = typeof deps.channels === 'function' ? deps.channels : () => (deps.channels as ReadonlyMap<string, ChannelAdapter> | undefined) ?? noChannels;
  const auth = new Authenticator(store.tokens, () => clock.now());
  const events = new EventHub(store, { pollMs: settings.eventPollMs, log });
  let draining = false;
  const app = new Hono<Env>();

  const incoming = (c: Context<Env>) => (c.env as Partial<HttpBindings> | undefined)?.incoming;
  const body = (c: Context<Env>) => readBody(c.req.raw, settings.bodyLimitBytes, incoming(c));

  /** Authenticates the caller and checks the route's permission; 401/403 before anything is read or changed. */
  const guard =
    (need: Permission, opts: { queryToken?: boolean } = {}): MiddlewareHandler<Env> =>
    async (c, next) => {
      const principal = await authenticate(c, opts.queryToken === true);
      if (!isAllowed(principal, need)) throw forbidden(principal, scopesFor(need), `${c.req.method} ${c.req.routePath}`);
      c.set('principal', principal);
      await next();
    };

  async function authenticate(c: Context<Env>, queryToken: boolean): Promise<Principal> {
    let secret = bearerToken(c.req.header('authorization'));
    if (secret === null && queryToken) secret = c.req.query('access_token') ?? null;
    if (secret === '') throw unauthorized('malformed Authorization header: expected "Bearer <token>"');
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

  // ── errors ──────────────────────────────────────────────────────────────────
  app.onError((err, c) => {
    const e = toApiError(err);
    if (e.status >= 500 && e.code === 'INTERNAL') {
      log.error('gateway: request failed', { method: c.req.method, path: c.req.path, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    }
    for (const [k, v] of Object.entries(e.headers)) c.header(k, v);
    return c.json(e.body(), e.status);
  });
  app.notFound((c) => c.json(new ApiError('NOT_FOUND', `no route ${c.req.method} ${c.req.path}`).body(), 404));

  // ── health ──────────────────────────────────────────────────────────────────
  app.get('/healthz', (c) => c.json({ ok: true }));
  app.get('/readyz', async (c) => {
    if (draining) return c.json({ ready: false, error: { code: 'DRAINING', message: 'the gateway is shutting down' } }, 503);
    try {
      await store.assertSchemaCurrent();
      const schema = await store.schemaStatus();
      return c.json({ ready: true, schema });
    } catch (err) {
      const e = toApiError(err);
      const error = e.code === 'INTERNAL' ? { code: 'STORE_UNREACHABLE', message: `store unreachable: ${err instanceof Error ? err.message : String(err)}` } : { code: e.code, message: e.message };
      return c.json({ ready: false, error }, 503);
    }
  });

  app.get('/v1/openapi.json', guard('read'), (c) => c.json(openApiDocument));

  // ── intake ──────────────────────────────────────────────────────────────────
  app.post('/v1/envelopes', guard('submit'), async (c) => {
    const principal = c.get('principal');
    const header = c.req.header('idempotency-key');
    if (header !== undefined && !/^[\x20-\x7e]{1,255}$/.test(header.trim())) {
      throw new ApiError('INVALID_IDEMPOTENCY_KEY', `Idempotency-Key must be 1–${MAX_KEY} printable ASCII characters`);
    }
    const input = check(apiEnvelopeSchema, parseJsonBody(await body(c)), 'body');
    const channel = input.channel ?? 'api';
    if (!isAllowed(principal, 'submit', channel)) throw forbidden(principal, scopesFor('submit', channel), `submit envelopes on channel "${channel}"`);
    if (input.agent !== undefined && !isAllowed(principal, 'operate')) throw forbidden(principal, scopesFor('operate'), 'address an agent directly ("agent")');
    const key = header?.trim() || newId('idem');
    const envelope = envelopeFromApi(input, `api:${key}`);
    const result = await intake.accept(envelope, { actor: `token:${principal.name}`, ...(input.agent ? { agent: input.agent } : {}) });
    if (!result.created && !sameEnvelope(envelope, result.envelope)) {
      throw new ApiError('IDEMPOTENCY_KEY_REUSED', `Idempotency-Key "${key}" was already used for a different envelope (${result.envelope.id}); use a new key`, {
        envelope: result.envelope.id,
      });
    }
    c.header('Idempotency-Key', key);
    const meta = { idempotencyKey: key, ...(header === undefined ? { idempotencyKeyGenerated: true } : {}), ...(result.created ? {} : { duplicate: true }) };
    if (result.envelope.state === 'unroutable') return c.json(unroutable(result, meta), 422);
    if (result.run) c.header('Location', `/v1/runs/${result.run.id}`);
    return c.json({ envelope: result.envelope, run: result.run, ...meta }, result.created ? 202 : 200);
  });

  app.get('/v1/envelopes/:id', guard('read'), async (c) => {
    const envelope = await store.envelopes.get(c.req.param('id'));
    if (!envelope) throw notFound('envelope', c.req.param('id'));
    return c.json({ envelope });
  });

  app.post('/v1/channels/:channel/:account', async (c) => {
    const name = c.req.param('channel');
    const channels = channelMap();
    const adapter = channels.get(name);
    if (!adapter) {
      throw new ApiError('UNKNOWN_CHANNEL', `unknown channel "${name}" (configured: ${[...channels.keys()].join(', ') || 'none'})`);
    }
    const rawBody = await body(c);
    const result = await adapter.receive({ account: c.req.param('account'), headers: c.req.raw.headers, rawBody, now: clock.now() });
    if (result.kind !== 'envelope') return reply(c, result.status, result.body);
    let envelope = result.envelope;
    if (envelope.replyTo === null && adapter.replyTarget) envelope = { ...envelope, replyTo: adapter.replyTarget(envelope) };
    // Durable before acknowledged: the platform's ack goes out only after the commit.
    await intake.accept(envelope, { actor: `channel:${name}` });
    return reply(c, result.ack.status, result.ack.body);
  });

  // ── runs and tasks ──────────────────────────────────────────────────────────
  app.get('/v1/runs', guard('read'), async (c) => {
    const q = check(runsQuery, c.req.query(), 'query');
    const limit = q.limit ?? QUERY_DEFAULTS.runs;
    const rows = await store.runs.list({ limit: limit + 1, ...(q.state ? { state: q.state } : {}), ...(q.agent ? { agent: q.agent } : {}), ...(q.cursor ? { before: q.cursor } : {}) });
    const runs = rows.slice(0, limit);
    return c.json({ runs, next: rows.length > limit ? runs.at(-1)!.id : null });
  });

  app.get('/v1/runs/:id', guard('read'), async (c) => {
    const id = c.req.param('id');
    const run = await store.runs.get(id);
    if (!run) throw notFound('run', id);
    const [tasks, envelope] = await Promise.all([store.tasks.list({ runId: id, limit: 10_000 }), run.envelopeId ? store.envelopes.get(run.envelopeId) : null]);
    return c.json({ run, tasks, envelope });
  });

  app.post('/v1/runs/:id/cancel', guard('operate'), async (c) => {
    const id = c.req.param('id');
    const text = await body(c);
    const input = text.trim() === '' ? {} : check(cancelBody, parseJsonBody(text), 'body');
    const cancelledTasks = await store.runs.cancel(id, clock.now(), `token:${c.get('principal').name}`, input.reason);
    return c.json({ run: await store.runs.get(id), cancelledTasks });
  });

  app.post('/v1/runs/:id/retry', guard('operate'), async (c) => {
    const run = await store.runs.retry(c.req.param('id'), clock.now(), `token:${c.get('principal').name}`);
    return c.json({ run });
  });

  app.get('/v1/tasks', guard('read'), async (c) => {
    const q = check(tasksQuery, c.req.query(), 'query');
    if (q.run && !(await store.runs.get(q.run))) throw notFound('run', q.run);
    const tasks = await store.tasks.list({ limit: q.limit ?? QUERY_DEFAULTS.tasks, ...(q.run ? { runId: q.run } : {}), ...(q.state ? { state: q.state } : {}) });
    return c.json({ tasks });
  });

  app.get('/v1/tasks/:id', guard('read'), async (c) => {
    const id = c.req.param('id');
    const task = await store.tasks.get(id);
    if (!task) throw notFound('task', id);
    const [turns, effects] = await Promise.all([store.tasks.turns(id), store.tasks.effects({ taskId: id })]);
    return c.json({ task, turns, effects });
  });

  // ── approvals ───────────────────────────────────────────────────────────────
  app.get('/v1/approvals', guard('read'), async (c) => {
    const q = check(approvalsQuery, c.req.query(), 'query');
    const state = q.state ?? 'pending';
    const approvals = await store.approvals.list({
      limit: q.limit ?? QUERY_DEFAULTS.approvals,
      ...(state === 'all' ? {} : { state }),
      ...(q.run ? { runId: q.run } : {}),
    });
    return c.json({ approvals });
  });

  app.post('/v1/approvals/:id/decision', guard('operate'), async (c) => {
    const input = check(decisionBody, parseJsonBody(await body(c)), 'body');
    const approval = await store.approvals.decide(
      c.req.param('id'),
      { approve: input.approve, actor: c.get('principal').name, ...(input.reason !== undefined ? { reason: input.reason } : {}) },
      clock.now(),
    );
    return c.json({ approval });
  });

  // ── audit and the live event stream ─────────────────────────────────────────
  app.get('/v1/audit', guard('read'), async (c) => {
    const q = check(auditQuery, c.req.query(), 'query');
    const limit = q.limit ?? QUERY_DEFAULTS.audit;
    const rows = await store.audit.list({ limit: limit + 1, afterSeq: q.after ?? 0, ...(q.run ? { runId: q.run } : {}) });
    const events = rows.slice(0, limit);
    return c.json({ events, next: rows.length > limit ? events.at(-1)!.seq : null });
  });

  /** Validates a stream request (cursor, run filter) before any bytes of the stream go out. */
  const streamRequest: MiddlewareHandler<Env> = async (c, next) => {
    if (draining) throw new ApiError('DRAINING', 'the gateway is shutting down; reconnect to another instance or retry shortly');
    const q = check(streamQuery, c.req.query(), 'query');
    const after = streamCursor(q, c.req.header('last-event-id'));
    if (after !== null) {
      const newest = await store.audit.latestSeq();
      if (after > newest) {
        // Waiting silently would skip events once the log grows past it: a cursor from another (or a reset) store.
        throw new ApiError('INVALID_CURSOR', `cursor ${after} is beyond the newest event (${newest}): it belongs to another or a reset store; resume with after=0 or no cursor`, {
          newest,
        });
      }
    }
    if (q.run && !(await store.runs.get(q.run))) throw notFound('run', q.run);
    c.set('stream', { after, runId: q.run ?? null });
    await next();
  };

  app.get('/v1/events', guard('read', { queryToken: true }), streamRequest, (c) => sseResponse(events, { ...c.get('stream'), log }));

  app.get(
    '/v1/ws',
    guard('read', { queryToken: true }),
    streamRequest,
    async (c, next) => {
      if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
        throw new ApiError('UPGRADE_REQUIRED', 'GET /v1/ws is a WebSocket endpoint: connect with a WebSocket client (or use GET /v1/events for SSE)', {}, { Upgrade: 'websocket' });
      }
      await next();
    },
    upgradeWebSocket((c: Context<Env>) => {
      const { after, runId } = c.get('stream');
      return { onOpen: (_evt, ws) => streamToWebSocket(events, ws.raw as WebSocket, { after, runId, log }) };
    }),
  );

  // ── MCP (docs/mcp.md) ───────────────────────────────────────────────────────
  // Each tool checks the token's scopes itself (reading: viewer; submitting to an agent, deciding: operator).
  const mcp = createMcpHttpHandler({ store, intake, clock, agents: deps.agents });
  app.post('/v1/mcp', guard('read'), async (c) => mcp.post(c.req.raw, c.get('principal'), parseJsonBody(await body(c))));
  app.get('/v1/mcp', guard('read'), () => mcp.get());

  // ── A2A (docs/a2a.md): every agent is an A2A agent; sending it work addresses it directly, so operator ──
  const a2a = createA2aHttpHandler({ store, intake, clock, agents: deps.agents });
  const a2aBase = (c: Context<Env>) => `${new URL(c.req.url).origin}/v1/a2a/${encodeURIComponent(c.req.param('agent') ?? '')}`;
  app.get('/v1/a2a/:agent/.well-known/agent-card.json', guard('read'), (c) => a2a.card(c.req.param('agent'), a2aBase(c)));
  app.post('/v1/a2a/:agent', guard('operate'), async (c) => a2a.rpc(c.req.param('agent'), a2aBase(c), c.get('principal'), parseJsonBody(await body(c)), c.req.raw));

  return {
    app,
    events,
    drain() {
      draining = true;
      events.close();
    },
    get draining() {
      return draining;
    },
  };
}

function unauthorized(message: string): ApiError {
  return new ApiError('UNAUTHENTICATED', message, {}, { 'WWW-Authenticate': 'Bearer realm="spine"' });
}

function forbidden(p: Principal, needed: string[], what: string): ApiError {
  return new ApiError('FORBIDDEN', `token "${p.name}" (scopes: ${p.scopes.join(', ') || 'none'}) may not ${what}; needs one of: ${needed.join(', ')}`, { needed });
}

function notFound(what: string, id: string): ApiError {
  return new ApiError('NOT_FOUND', `${what} "${id}" not found`);
}

function unroutable(result: AcceptResult, meta: Record<string, Json>): Json {
  const e = result.envelope;
  return {
    error: {
      code: e.error?.code ?? 'UNROUTABLE',
      message: e.error?.message ?? 'no binding matches this envelope',
      envelope: e.id,
      decision: e.route,
    },
    envelope: e as unknown as Json,
    run: null,
    ...meta,
  };
}

/** Answers a channel with the platform's expected reply: JSON, plain text or empty. */
function reply(c: Context<Env>, status: number, body: Json | string | null): Response {
  if (body === null) return c.body(null, status as 200);
  if (typeof body === 'string') return c.text(body, status as 200);
  return c.json(body, status as 200);
}

/** What identifies an envelope's content, for catching a reused Idempotency-Key. */
function fingerprint(e: Pick<Envelope, 'channel' | 'account' | 'peer' | 'parentPeer' | 'sender' | 'thread' | 'text' | 'data'>): string {
  return stableJson({ channel: e.channel, account: e.account, peer: e.peer, parentPeer: e.parentPeer, sender: e.sender, thread: e.thread, text: e.text, data: e.data });
}

function sameEnvelope(a: Envelope, b: EnvelopeRecord): boolean {
  return fingerprint(a) === fingerprint(b);
}

