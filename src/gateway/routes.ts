import { z, type OpenAPIHono } from '@hono/zod-openapi';
import { apiEnvelopeSchema } from '../intake/envelope.ts';
import { ERROR_CATALOGUE } from '../core/errors.ts';
import { AUTH, BODY, SYSTEM, describeCodes, errorHeadersDoc, jsonBody, route } from './route-kit.ts';
import { approvalsQuery, auditQuery, cancelBody, decisionBody, idParam, runsQuery, streamQuery, tasksQuery } from './schemas.ts';
import { approval, auditEvent, effect, envelopeRecord, errorBody, errorDetail, json, run, schemaStatus, task, turnRecord, turnUsage, runUsage, usageTotal } from './wire.ts';
import { IDEMPOTENCY_KEY } from '../core/envelope.ts';

/**
 * Every route of the gateway, declared once with its request and response schemas
 * (docs/gateway.md). The app binds a handler to each; the OpenAPI document at
 * /v1/openapi.json is generated from these declarations. Per route:
 * `x-spine-permission` is what the caller's token needs (the guard reads it), and
 * `x-spine-errors` the error codes it may answer, each documented under the status
 * the error catalogue gives it.
 */

/** Who may call: bearer tokens, except where `x-spine-permission` is public. */
export const SECURITY_SCHEME = {
  type: 'http',
  scheme: 'bearer',
  description: 'an API token (`spine tokens create`): scopes admin, operator, viewer, ingress:<channel>',
} as const;

export const DOCUMENT: Parameters<OpenAPIHono['getOpenAPI31Document']>[0] = {
  openapi: '3.1.0',
  info: {
    title: 'Spine gateway',
    version: '1',
    description:
      'Durable intake, runs, tasks, approvals and the live event stream of a Spine orchestrator. Every route but /healthz, /readyz and the channel webhooks needs a bearer token (docs/gateway.md). Errors are `{"error": {"code", "message", …}}` with the status the error catalogue gives the code (docs/errors.md); a method a path does not serve is a 405 METHOD_NOT_ALLOWED with `Allow`.',
  },
  servers: [{ url: 'http://127.0.0.1:7400', description: 'the default local gateway' }],
  security: [{ bearer: [] }],
  tags: [
    { name: 'health', description: 'liveness and readiness' },
    { name: 'intake', description: 'submitting work' },
    { name: 'runs', description: 'runs and tasks' },
    { name: 'approvals', description: 'human decisions' },
    { name: 'briefs', description: 'synthesised results of joins (docs/synthesis.md)' },
    { name: 'events', description: 'the audit log and its live stream' },
    { name: 'meta', description: 'this document' },
    { name: 'mcp', description: 'Spine as an MCP server (docs/mcp.md)' },
    { name: 'a2a', description: 'Spine agents as A2A agents (docs/a2a.md)' },
    { name: 'validation', description: 'gate verdicts (docs/validation.md)' },
    { name: 'observability', description: 'metrics and the live view (docs/observability.md)' },
    { name: 'dashboard', description: 'the browser dashboard and its session (docs/observability.md)' },
  ],
};

// ── JSON-RPC (MCP and A2A) ───────────────────────────────────────────────────

const rpcId = z.union([z.string(), z.number(), z.null()]);
const jsonRpcRequest = z
  .object({ jsonrpc: z.literal('2.0'), method: z.string(), params: json.optional(), id: rpcId.optional() })
  .openapi('JsonRpcRequest', { description: 'a JSON-RPC 2.0 request or notification' });
const jsonRpcResponse = z
  .object({ jsonrpc: z.literal('2.0'), id: rpcId, result: json.optional(), error: z.object({ code: z.number().int(), message: z.string(), data: json.optional() }).optional() })
  .openapi('JsonRpcResponse', { description: 'a JSON-RPC 2.0 response: `result`, or `error` with a JSON-RPC error code' });
const agentParam = z.object({ agent: z.string().openapi({ description: 'the agent name' }) });
const sse = (description: string) => ({ 'text/event-stream': { schema: z.string().openapi({ description }) } });

// ── the routes ───────────────────────────────────────────────────────────────

const ready = z.strictObject({ ready: z.literal(true), schema: schemaStatus });
const notReady = z.strictObject({ ready: z.literal(false), error: errorDetail }).openapi('NotReady');

export const healthz = route({
  method: 'get',
  path: '/healthz',
  operationId: 'healthz',
  summary: 'Liveness: 200 while the process is up',
  tags: ['health'],
  'x-spine-permission': 'public',
  errors: [],
  responses: { 200: jsonBody(z.strictObject({ ok: z.literal(true) }), 'the process is up') },
});

export const readyz = route({
  method: 'get',
  path: '/readyz',
  operationId: 'readyz',
  summary: 'Readiness: the store is reachable, can write, and its schema is current',
  tags: ['health'],
  'x-spine-permission': 'public',
  errors: ['DRAINING', 'STORE_UNAVAILABLE', 'SCHEMA_OUTDATED', 'SCHEMA_TOO_NEW'],
  responses: {
    200: jsonBody(ready, 'ready to serve'),
    503: {
      description: `not ready, with the reason: ${describeCodes(['DRAINING', 'STORE_UNAVAILABLE', 'SCHEMA_OUTDATED', 'SCHEMA_TOO_NEW'])}`,
      headers: errorHeadersDoc(['STORE_UNAVAILABLE']),
      content: { 'application/json': { schema: notReady } },
    },
  },
});

export const openapi = route({
  method: 'get',
  path: '/v1/openapi.json',
  operationId: 'openapi',
  summary: 'This document (OpenAPI 3.1), generated from the route declarations',
  tags: ['meta'],
  'x-spine-permission': 'read',
  errors: [...AUTH, ...SYSTEM],
  responses: { 200: jsonBody(z.object({ openapi: z.literal('3.1.0') }).catchall(z.unknown()), 'the OpenAPI 3.1 document') },
});

const accepted = z
  .strictObject({
    envelope: envelopeRecord,
    run: run.nullable(),
    idempotencyKey: z.string().openapi({ description: 'the key used (also the Idempotency-Key response header)' }),
    idempotencyKeyGenerated: z.literal(true).optional().openapi({ description: 'present when the request had no Idempotency-Key' }),
    duplicate: z.literal(true).optional().openapi({ description: 'present when the key was seen before: the original envelope and run' }),
  })
  .openapi('Accepted');
export const unroutable = z
  .strictObject({
    error: errorDetail,
    envelope: envelopeRecord,
    run: z.null(),
    idempotencyKey: z.string(),
    idempotencyKeyGenerated: z.literal(true).optional(),
    duplicate: z.literal(true).optional(),
  })
  .openapi('Unroutable', { description: 'an envelope no binding matches: stored in its error state, answered with the routing explanation' });
const idempotencyKey = z
  .string()
  .regex(IDEMPOTENCY_KEY)
  .optional()
  .openapi({ description: 'dedupes retries (1–255 printable ASCII characters); generated when absent' });
const acceptedHeaders = {
  'Idempotency-Key': { description: 'the key used', schema: { type: 'string' } },
  Location: { description: '/v1/runs/<run id>', schema: { type: 'string' } },
} as const;

export const submitEnvelope = route({
  method: 'post',
  path: '/v1/envelopes',
  operationId: 'submitEnvelope',
  summary: 'Submit work: the envelope and its run are committed before the answer',
  description:
    'Routed by the bindings (or straight to `agent`, which needs the operator scope). A retry with the same Idempotency-Key returns the original envelope and run (200, `duplicate: true`), never a second run; the same key with a different body is a 409. Without the header a key is generated and returned. An envelope no binding matches is stored in its error state and answered 422 UNROUTABLE; input that breaks the agent\'s input contract is a 422 CONTRACT_VIOLATION naming each field, and nothing is stored. The body must be `application/json` (415 otherwise), at most 64 levels deep and without NUL characters (400 INPUT_LIMIT). Sender roles are dropped unless the token has the operator scope (docs/security.md).',
  tags: ['intake'],
  'x-spine-permission': 'submit',
  errors: [...BODY, 'INVALID_REQUEST', 'INVALID_IDEMPOTENCY_KEY', ...AUTH, 'IDEMPOTENCY_KEY_REUSED', 'UNROUTABLE', 'UNKNOWN_AGENT', 'CONTRACT_VIOLATION', ...SYSTEM],
  request: {
    headers: z.object({ 'idempotency-key': idempotencyKey }),
    body: { required: true, content: { 'application/json': { schema: apiEnvelopeSchema } } },
  },
  responses: {
    202: { ...jsonBody(accepted, 'accepted: committed durably'), headers: acceptedHeaders },
    200: { ...jsonBody(accepted, 'a duplicate: the original envelope and run (`duplicate: true`)'), headers: acceptedHeaders },
    422: {
      description: `UNROUTABLE (stored, answered with the envelope): ${ERROR_CATALOGUE.UNROUTABLE.summary}; or, with the plain error body: ${describeCodes(['UNKNOWN_AGENT', 'CONTRACT_VIOLATION'])}`,
      content: { 'application/json': { schema: z.union([unroutable, errorBody]) } },
    },
  },
});

export const getEnvelope = route({
  method: 'get',
  path: '/v1/envelopes/{id}',
  operationId: 'getEnvelope',
  summary: 'One envelope, with its routing decision',
  tags: ['intake'],
  'x-spine-permission': 'read',
  errors: [...AUTH, 'NOT_FOUND', ...SYSTEM],
  request: { params: idParam('envelope') },
  responses: { 200: jsonBody(z.strictObject({ envelope: envelopeRecord }), 'the envelope') },
});

const platformAck = {
  'application/json': { schema: json },
  'text/plain': { schema: z.string() },
};
/** Slack and Telegram acknowledge with an empty 200: a response no media type describes, marked for readers (and the OpenAPI test). */
const mayBeEmpty = { 'x-spine-empty-body': true } as unknown as Record<never, never>;

export const channelWebhook = route({
  method: 'post',
  path: '/v1/channels/{channel}/{account}',
  operationId: 'channelWebhook',
  summary: "A channel's webhook (Slack, Telegram, Discord, a generic signed webhook)",
  description:
    "Authenticated by the platform's signature over the raw body, not a bearer token. A valid request becomes an envelope, committed before the platform's expected acknowledgement is sent; handshakes (Slack url_verification, Discord PING) and events with nothing to do are answered without storing anything. A bad signature, stale timestamp, wrong secret or unknown account is a 401 and nothing is stored. The answers are the platform's own, not Spine's: Slack and Telegram get an empty 200, Slack's url_verification `{challenge}`, Discord `{type: 1}` (PONG) or `{type: 5}` (deferred), the generic webhook 202 `{accepted: true}` (docs/channels.md).",
  tags: ['intake'],
  'x-spine-permission': 'public',
  errors: ['BAD_REQUEST', ...BODY, 'UNAUTHORIZED', 'UNKNOWN_CHANNEL', 'CONTRACT_VIOLATION', 'SECRET_UNSET', ...SYSTEM],
  request: {
    params: z.object({
      channel: z.string().openapi({ description: 'the channel: webhook, slack, telegram, discord' }),
      account: z.string().openapi({ description: "the account (workspace, bot, app) in the channel's config" }),
    }),
    body: { required: true, content: { '*/*': { schema: z.string().openapi({ description: "the platform's payload, verified over its exact bytes" }) } } },
  },
  responses: {
    200: { description: "the platform's acknowledgement: JSON, text, or an empty body", content: platformAck, ...mayBeEmpty },
    202: { description: 'the generic webhook\'s acknowledgement: `{"accepted": true}`', content: platformAck },
  },
});

export const listRuns = route({
  method: 'get',
  path: '/v1/runs',
  operationId: 'listRuns',
  summary: 'Runs, newest first, with cursor pagination',
  tags: ['runs'],
  'x-spine-permission': 'read',
  errors: ['INVALID_REQUEST', ...AUTH, ...SYSTEM],
  request: { query: runsQuery },
  responses: { 200: jsonBody(z.strictObject({ runs: z.array(run), next: z.string().nullable() }), 'a page of runs; pass `next` as `cursor`; null on the last page') },
});

export const getRun = route({
  method: 'get',
  path: '/v1/runs/{id}',
  operationId: 'getRun',
  summary: "One run with its tasks, envelope, and usage: each turn's tokens and cost, their sum, and the run's reserved and settled spend",
  tags: ['runs'],
  'x-spine-permission': 'read',
  errors: [...AUTH, 'NOT_FOUND', ...SYSTEM],
  request: { params: idParam('run') },
  responses: { 200: jsonBody(z.strictObject({ run, tasks: z.array(task), envelope: envelopeRecord.nullable(), usage: runUsage }), 'the run') },
});

export const cancelRun = route({
  method: 'post',
  path: '/v1/runs/{id}/cancel',
  operationId: 'cancelRun',
  summary: 'Cancel every unfinished task of the run (cascades to children)',
  tags: ['runs'],
  'x-spine-permission': 'operate',
  errors: [...BODY, 'INVALID_REQUEST', ...AUTH, 'NOT_FOUND', 'INVALID_STATE', ...SYSTEM],
  request: { params: idParam('run'), body: { required: false, content: { 'application/json': { schema: cancelBody } } } },
  responses: { 200: jsonBody(z.strictObject({ run: run.nullable(), cancelledTasks: z.number().int() }), 'cancelled') },
});

export const retryRun = route({
  method: 'post',
  path: '/v1/runs/{id}/retry',
  operationId: 'retryRun',
  summary: 'Replay a failed run from its last committed turn',
  tags: ['runs'],
  'x-spine-permission': 'operate',
  errors: [...AUTH, 'NOT_FOUND', 'INVALID_STATE', ...SYSTEM],
  request: { params: idParam('run') },
  responses: { 200: jsonBody(z.strictObject({ run }), 'queued again') },
});

export const listTasks = route({
  method: 'get',
  path: '/v1/tasks',
  operationId: 'listTasks',
  summary: 'Tasks, oldest first (usually of one run)',
  tags: ['runs'],
  'x-spine-permission': 'read',
  errors: ['INVALID_REQUEST', ...AUTH, 'NOT_FOUND', ...SYSTEM],
  request: { query: tasksQuery },
  responses: { 200: jsonBody(z.strictObject({ tasks: z.array(task) }), 'tasks') },
});

export const getTask = route({
  method: 'get',
  path: '/v1/tasks/{id}',
  operationId: 'getTask',
  summary: "One task with its turns, effects, and each turn's usage (tokens, cost) and their sum",
  tags: ['runs'],
  'x-spine-permission': 'read',
  errors: [...AUTH, 'NOT_FOUND', ...SYSTEM],
  request: { params: idParam('task') },
  responses: { 200: jsonBody(z.strictObject({ task, turns: z.array(turnRecord), effects: z.array(effect), usage: z.strictObject({ turns: z.array(turnUsage), total: usageTotal }) }), 'the task') },
});

export const listApprovals = route({
  method: 'get',
  path: '/v1/approvals',
  operationId: 'listApprovals',
  summary: 'Approval requests (pending by default)',
  tags: ['approvals'],
  'x-spine-permission': 'read',
  errors: ['INVALID_REQUEST', ...AUTH, ...SYSTEM],
  request: { query: approvalsQuery },
  responses: { 200: jsonBody(z.strictObject({ approvals: z.array(approval) }), 'approvals') },
});

export const decideApproval = route({
  method: 'post',
  path: '/v1/approvals/{id}/decision',
  operationId: 'decideApproval',
  summary: 'Approve or deny (approving an escalation may raise its run\'s cost ceiling); the decider recorded is the token name',
  tags: ['approvals'],
  'x-spine-permission': 'operate',
  errors: [...BODY, 'INVALID_REQUEST', 'INVALID_INPUT', ...AUTH, 'NOT_FOUND', 'INVALID_STATE', ...SYSTEM],
  request: { params: idParam('approval'), body: { required: true, content: { 'application/json': { schema: decisionBody } } } },
  responses: { 200: jsonBody(z.strictObject({ approval }), 'decided') },
});

export const listAudit = route({
  method: 'get',
  path: '/v1/audit',
  operationId: 'listAudit',
  summary: 'Audit events in seq order (a page of the same log the event stream carries)',
  tags: ['events'],
  'x-spine-permission': 'read',
  errors: ['INVALID_REQUEST', ...AUTH, ...SYSTEM],
  request: { query: auditQuery },
  responses: { 200: jsonBody(z.strictObject({ events: z.array(auditEvent), next: z.number().int().nullable() }), 'events; pass `next` as `after`; null on the last page') },
});

const STREAM_ERRORS = ['INVALID_REQUEST', 'INVALID_CURSOR', ...AUTH, 'NOT_FOUND', 'DRAINING', ...SYSTEM] as const;

export const eventStream = route({
  method: 'get',
  path: '/v1/events',
  operationId: 'eventStream',
  summary: 'Live event stream (Server-Sent Events), resumable',
  description:
    'Each message has `id: <seq>` and an AuditEvent as JSON data. After the backlog, one `event: ready` (`{"seq": N}`); before the server ends the stream, `event: end` (`{"reason", "seq"}`); live model tokens as `event: turn.token` without an id. Resume with the `Last-Event-ID` header or `?after=`: nothing is missed and nothing repeated.',
  tags: ['events'],
  'x-spine-permission': 'read',
  errors: [...STREAM_ERRORS],
  request: {
    query: streamQuery,
    headers: z.object({ 'last-event-id': z.string().optional().openapi({ description: 'resume after this seq (EventSource sends it by itself on reconnect)' }) }),
  },
  responses: { 200: { description: 'the stream', content: sse('SSE messages whose data are AuditEvent JSON (see #/components/schemas/AuditEvent)') } },
});

export const eventSocket = route({
  method: 'get',
  path: '/v1/ws',
  operationId: 'eventSocket',
  summary: 'Live event stream over WebSocket, resumable',
  description:
    'Text messages: `{"type":"event","seq":N,"event":AuditEvent}`, one `{"type":"ready","seq":N}` after the backlog, `{"type":"turn.token","event":{…}}` for live model tokens, and `{"type":"end","reason","seq"}` before the server closes. Resume with `?after=<last seq>`.',
  tags: ['events'],
  'x-spine-permission': 'read',
  errors: [...STREAM_ERRORS, 'UPGRADE_REQUIRED'],
  request: { query: streamQuery },
  responses: { 101: { description: 'switching to the WebSocket protocol' } },
});

export const mcp = route({
  method: 'post',
  path: '/v1/mcp',
  operationId: 'mcp',
  summary: 'MCP over Streamable HTTP (stateless, JSON responses): tools to submit work, read runs, list and decide approvals',
  description:
    'A JSON-RPC message of the Model Context Protocol, answered with JSON. Send `Accept: application/json, text/event-stream` and `Content-Type: application/json`. Stateless: no session id; each request acts as its bearer token. Tools check scopes themselves: `get_run`, `list_approvals`, `list_agents` need viewer; `submit_work` and `decide_approval` need operator. A tool refused or failing answers `isError: true` with the Spine error code. The MCP transport answers its own protocol errors (400, 406, 415) as JSON-RPC errors. GET (a server-initiated stream) is not offered: 405. See docs/mcp.md.',
  tags: ['mcp'],
  'x-spine-permission': 'mcp',
  errors: [...BODY, ...AUTH, ...SYSTEM],
  request: { body: { required: true, content: { 'application/json': { schema: jsonRpcRequest } } } },
  responses: {
    200: jsonBody(jsonRpcResponse, 'the JSON-RPC response'),
    202: { description: 'a notification or response was accepted' },
    400: {
      description: `${describeCodes(['INVALID_JSON', 'INVALID_BODY'])}; or a JSON-RPC error from the MCP transport: not a valid JSON-RPC message`,
      content: { 'application/json': { schema: z.union([errorBody, jsonRpcResponse]) } },
    },
    406: jsonBody(jsonRpcResponse, 'the Accept header does not allow both application/json and text/event-stream (a JSON-RPC error)'),
    415: jsonBody(jsonRpcResponse, 'the Content-Type is not application/json (a JSON-RPC error)'),
  },
});

const agentCard = z
  .object({
    name: z.string(),
    description: z.string(),
    version: z.string(),
    supportedInterfaces: z.array(z.object({ url: z.string(), protocolBinding: z.string(), protocolVersion: z.string() })),
    capabilities: z.object({ streaming: z.boolean().optional() }),
    skills: z.array(z.object({ id: z.string(), name: z.string(), description: z.string() })),
  })
  .openapi('AgentCard', { description: 'an A2A AgentCard (A2A protocol 1.0); more fields than these are sent' });

export const a2aAgentCard = route({
  method: 'get',
  path: '/v1/a2a/{agent}/.well-known/agent-card.json',
  operationId: 'a2aAgentCard',
  summary: "An agent's A2A Agent Card (A2A protocol 1.0)",
  description:
    'Name, description, skills (the agent, with its contracts), the JSON-RPC interface at /v1/a2a/{agent}, streaming capability and the bearer security scheme. A2A clients find it from the base URL /v1/a2a/{agent}/. See docs/a2a.md.',
  tags: ['a2a'],
  'x-spine-permission': 'read',
  errors: [...AUTH, 'NOT_FOUND', ...SYSTEM],
  request: { params: agentParam },
  responses: { 200: jsonBody(agentCard, 'the card') },
});

export const a2aJsonRpc = route({
  method: 'post',
  path: '/v1/a2a/{agent}',
  operationId: 'a2aJsonRpc',
  summary: "The agent's A2A JSON-RPC endpoint: SendMessage, SendStreamingMessage, GetTask, CancelTask, …",
  description:
    'A2A protocol 1.0 over JSON-RPC 2.0 (send `A2A-Version: 1.0`). A message becomes an envelope on channel `a2a` addressed to the agent, and starts a run; the A2A task follows it and carries the run output as its artifact. SendStreamingMessage and SubscribeToTask answer Server-Sent Events of JSON-RPC responses. Protocol errors are JSON-RPC errors in a 200 answer.',
  tags: ['a2a'],
  'x-spine-permission': 'operate',
  errors: [...BODY, ...AUTH, 'NOT_FOUND', ...SYSTEM],
  request: { params: agentParam, body: { required: true, content: { 'application/json': { schema: jsonRpcRequest } } } },
  responses: {
    200: {
      description: 'the JSON-RPC response, or an event stream of them for SendStreamingMessage and SubscribeToTask',
      content: { 'application/json': { schema: jsonRpcResponse }, ...sse('SSE messages whose data are JSON-RPC responses') },
    },
  },
});

/** Every declared route, in document order. */
export const ROUTES = [
  healthz,
  readyz,
  openapi,
  submitEnvelope,
  getEnvelope,
  channelWebhook,
  listRuns,
  getRun,
  cancelRun,
  retryRun,
  listTasks,
  getTask,
  listApprovals,
  decideApproval,
  listAudit,
  eventStream,
  eventSocket,
  mcp,
  a2aAgentCard,
  a2aJsonRpc,
] as const;
