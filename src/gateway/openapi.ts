import { z } from 'zod';
import { apiEnvelopeSchema } from '../intake/envelope.ts';
import type { Permission } from './auth.ts';
import { cancelBody, decisionBody } from './schemas.ts';

/**
 * The OpenAPI 3.1 description of the gateway. Written by hand as a typed object; a
 * test checks that every route the app registers is here and nothing else is.
 * Request-body schemas come from the same zod schemas the handlers validate with.
 */

type JsonSchema = { [key: string]: unknown };

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  description: string;
  schema: JsonSchema;
}

interface MediaType {
  schema: JsonSchema;
}

interface ResponseObject {
  description: string;
  headers?: Record<string, { description: string; schema: JsonSchema }>;
  content?: Record<string, MediaType>;
}

type ResponseOrRef = ResponseObject | { $ref: string };

interface Operation {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** Which scopes may call it (docs/gateway.md, "Auth"). */
  'x-spine-permission': Permission;
  security?: Array<Record<string, string[]>>;
  parameters?: Parameter[];
  requestBody?: { required: boolean; content: Record<string, MediaType> };
  responses: Record<string, ResponseOrRef>;
}

type Method = 'get' | 'post';

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  servers: Array<{ url: string; description: string }>;
  security: Array<Record<string, string[]>>;
  tags: Array<{ name: string; description: string }>;
  paths: Record<string, Partial<Record<Method, Operation>>>;
  components: {
    securitySchemes: Record<string, { type: 'http'; scheme: 'bearer'; description: string }>;
    schemas: Record<string, JsonSchema>;
    responses: Record<string, ResponseObject>;
  };
}

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
const resp = (name: string): ResponseOrRef => ({ $ref: `#/components/responses/${name}` });
const json = (schema: JsonSchema, description: string): ResponseObject => ({ description, content: { 'application/json': { schema } } });
const obj = (properties: Record<string, JsonSchema>, required: string[] = Object.keys(properties)): JsonSchema => ({ type: 'object', properties, required });
const nullable = (s: JsonSchema): JsonSchema => ({ oneOf: [s, { type: 'null' }] });
const str: JsonSchema = { type: 'string' };
const int: JsonSchema = { type: 'integer' };
const anyJson: JsonSchema = {};

function fromZod(schema: z.ZodType): JsonSchema {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

const idParam = (what: string): Parameter => ({ name: 'id', in: 'path', required: true, description: `the ${what} id`, schema: str });
const q = (name: string, description: string, schema: JsonSchema = str): Parameter => ({ name, in: 'query', description, schema });
const limitParam = (max: number, def: number): Parameter => q('limit', `page size (default ${def}, at most ${max})`, { type: 'integer', minimum: 1, maximum: max });

const errors = (...codes: Array<'400' | '401' | '403' | '404' | '409' | '413' | '422' | '426' | '503'>): Record<string, ResponseOrRef> => {
  const names: Record<string, string> = {
    '400': 'BadRequest',
    '401': 'Unauthenticated',
    '403': 'Forbidden',
    '404': 'NotFound',
    '409': 'Conflict',
    '413': 'TooLarge',
    '422': 'Unprocessable',
    '426': 'UpgradeRequired',
    '503': 'Unavailable',
  };
  return Object.fromEntries(codes.map((c) => [c, resp(names[c]!)]));
};
const AUTH = ['401', '403'] as const;

const streamParams: Parameter[] = [
  q('after', 'resume after this audit seq (the last event id you saw); absent: from now on; 0: from the beginning', { type: 'integer', minimum: 0 }),
  q('run', 'only events of this run'),
  q('access_token', 'the bearer token, for clients that cannot set headers (EventSource, browser WebSocket)'),
];

export const openApiDocument: OpenApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Spine gateway',
    version: '1',
    description:
      'Durable intake, runs, tasks, approvals and the live event stream of a Spine orchestrator. Every route but /healthz, /readyz and the channel webhooks needs a bearer token (see docs/gateway.md). Errors are `{"error": {"code", "message", …}}`.',
  },
  servers: [{ url: 'http://127.0.0.1:7400', description: 'the default local gateway' }],
  security: [{ bearer: [] }],
  tags: [
    { name: 'health', description: 'liveness and readiness' },
    { name: 'intake', description: 'submitting work' },
    { name: 'runs', description: 'runs and tasks' },
    { name: 'approvals', description: 'human decisions' },
    { name: 'events', description: 'the audit log and its live stream' },
    { name: 'meta', description: 'this document' },
    { name: 'mcp', description: 'Spine as an MCP server (docs/mcp.md)' },
    { name: 'a2a', description: 'Spine agents as A2A agents (docs/a2a.md)' },
  ],
  paths: {
    '/healthz': {
      get: {
        operationId: 'healthz',
        summary: 'Liveness: 200 while the process is up',
        tags: ['health'],
        'x-spine-permission': 'public',
        security: [],
        responses: { '200': json(obj({ ok: { const: true } }), 'the process is up') },
      },
    },
    '/readyz': {
      get: {
        operationId: 'readyz',
        summary: 'Readiness: the store is reachable and its schema is current',
        tags: ['health'],
        'x-spine-permission': 'public',
        security: [],
        responses: {
          '200': json(obj({ ready: { const: true }, schema: obj({ current: int, known: int }) }), 'ready to serve'),
          '503': json(obj({ ready: { const: false }, error: ref('ErrorInfo') }), 'not ready: STORE_UNREACHABLE, SCHEMA_OUTDATED, SCHEMA_TOO_NEW or DRAINING'),
        },
      },
    },
    '/v1/openapi.json': {
      get: {
        operationId: 'openapi',
        summary: 'This document',
        tags: ['meta'],
        'x-spine-permission': 'read',
        responses: { '200': json({ type: 'object' }, 'the OpenAPI 3.1 document'), ...errors(...AUTH) },
      },
    },
    '/v1/envelopes': {
      post: {
        operationId: 'submitEnvelope',
        summary: 'Submit work: the envelope and its run are committed before the answer',
        description:
          'Routed by the bindings (or straight to `agent`, which needs the operator scope). A retry with the same Idempotency-Key returns the original envelope and run (200, `duplicate: true`), never a second run; the same key with a different body is a 409. Without the header a key is generated and returned. An envelope no binding matches is stored in its error state and answered 422.',
        tags: ['intake'],
        'x-spine-permission': 'submit',
        parameters: [
          {
            name: 'Idempotency-Key',
            in: 'header',
            description: 'dedupes retries (1–255 printable ASCII characters); generated when absent',
            schema: { type: 'string', minLength: 1, maxLength: 255 },
          },
        ],
        requestBody: { required: true, content: { 'application/json': { schema: ref('ApiEnvelope') } } },
        responses: {
          '202': { ...json(ref('Accepted'), 'accepted: committed durably'), headers: { 'Idempotency-Key': { description: 'the key used', schema: str } } },
          '200': json(ref('Accepted'), 'a duplicate: the original envelope and run (`duplicate: true`)'),
          '422': json(
            obj({ error: ref('ErrorInfo'), envelope: ref('EnvelopeRecord'), run: { type: 'null' }, idempotencyKey: str }, ['error', 'envelope']),
            'stored but unroutable (error code UNROUTABLE), with the routing explanation; or UNKNOWN_AGENT for an unknown `agent`',
          ),
          ...errors('400', ...AUTH, '409', '413'),
        },
      },
    },
    '/v1/envelopes/{id}': {
      get: {
        operationId: 'getEnvelope',
        summary: 'One envelope, with its routing decision',
        tags: ['intake'],
        'x-spine-permission': 'read',
        parameters: [idParam('envelope')],
        responses: { '200': json(obj({ envelope: ref('EnvelopeRecord') }), 'the envelope'), ...errors(...AUTH, '404') },
      },
    },
    '/v1/channels/{channel}/{account}': {
      post: {
        operationId: 'channelWebhook',
        summary: "A channel's webhook (Slack, Telegram, Discord, generic webhook)",
        description:
          "Authenticated by the platform's signature, not a bearer token. A valid request becomes an envelope, committed before the platform's expected acknowledgement is sent; handshakes (Slack url_verification, Discord PING) are answered without storing anything. A bad signature is a 401 and nothing is stored.",
        tags: ['intake'],
        'x-spine-permission': 'public',
        security: [],
        parameters: [
          { name: 'channel', in: 'path', required: true, description: 'the channel adapter: webhook, slack, telegram, discord', schema: str },
          { name: 'account', in: 'path', required: true, description: "the account (workspace, bot, app) in the channel's config", schema: str },
        ],
        requestBody: { required: true, content: { '*/*': { schema: anyJson } } },
        responses: {
          '200': { description: "the platform's expected acknowledgement", content: { '*/*': { schema: anyJson } } },
          '401': resp('Unauthenticated'),
          '404': json(ref('Error'), 'unknown channel (UNKNOWN_CHANNEL)'),
          ...errors('400', '413'),
        },
      },
    },
    '/v1/runs': {
      get: {
        operationId: 'listRuns',
        summary: 'Runs, newest first, with cursor pagination',
        tags: ['runs'],
        'x-spine-permission': 'read',
        parameters: [
          q('state', 'filter by state', { enum: ['running', 'succeeded', 'failed', 'cancelled'] }),
          q('agent', 'filter by agent'),
          limitParam(200, 50),
          q('cursor', 'the `next` of the previous page'),
        ],
        responses: { '200': json(obj({ runs: { type: 'array', items: ref('Run') }, next: nullable(str) }), 'a page of runs; `next` is null on the last page'), ...errors('400', ...AUTH) },
      },
    },
    '/v1/runs/{id}': {
      get: {
        operationId: 'getRun',
        summary: 'One run with its tasks and envelope',
        tags: ['runs'],
        'x-spine-permission': 'read',
        parameters: [idParam('run')],
        responses: {
          '200': json(obj({ run: ref('Run'), tasks: { type: 'array', items: ref('Task') }, envelope: nullable(ref('EnvelopeRecord')) }), 'the run'),
          ...errors(...AUTH, '404'),
        },
      },
    },
    '/v1/runs/{id}/cancel': {
      post: {
        operationId: 'cancelRun',
        summary: 'Cancel every unfinished task of the run (cascades to children)',
        tags: ['runs'],
        'x-spine-permission': 'operate',
        parameters: [idParam('run')],
        requestBody: { required: false, content: { 'application/json': { schema: fromZod(cancelBody) } } },
        responses: {
          '200': json(obj({ run: ref('Run'), cancelledTasks: int }), 'cancelled'),
          ...errors('400', ...AUTH, '404', '409'),
        },
      },
    },
    '/v1/runs/{id}/retry': {
      post: {
        operationId: 'retryRun',
        summary: 'Replay a failed run from its last committed turn',
        tags: ['runs'],
        'x-spine-permission': 'operate',
        parameters: [idParam('run')],
        responses: { '200': json(obj({ run: ref('Run') }), 'queued again'), ...errors(...AUTH, '404', '409') },
      },
    },
    '/v1/tasks': {
      get: {
        operationId: 'listTasks',
        summary: 'Tasks, oldest first (usually of one run)',
        tags: ['runs'],
        'x-spine-permission': 'read',
        parameters: [
          q('run', 'only tasks of this run (404 if it does not exist)'),
          q('state', 'filter by state', { enum: ['queued', 'leased', 'running', 'waiting', 'retry-scheduled', 'succeeded', 'failed', 'escalated', 'dead', 'cancelled'] }),
          limitParam(1000, 200),
        ],
        responses: { '200': json(obj({ tasks: { type: 'array', items: ref('Task') } }), 'tasks'), ...errors('400', ...AUTH, '404') },
      },
    },
    '/v1/tasks/{id}': {
      get: {
        operationId: 'getTask',
        summary: 'One task with its turns and effects',
        tags: ['runs'],
        'x-spine-permission': 'read',
        parameters: [idParam('task')],
        responses: {
          '200': json(obj({ task: ref('Task'), turns: { type: 'array', items: ref('Turn') }, effects: { type: 'array', items: ref('Effect') } }), 'the task'),
          ...errors(...AUTH, '404'),
        },
      },
    },
    '/v1/approvals': {
      get: {
        operationId: 'listApprovals',
        summary: 'Approval requests (pending by default)',
        tags: ['approvals'],
        'x-spine-permission': 'read',
        parameters: [q('state', 'pending (default), approved, denied, expired or all', { enum: ['pending', 'approved', 'denied', 'expired', 'all'] }), q('run', 'only this run'), limitParam(500, 50)],
        responses: { '200': json(obj({ approvals: { type: 'array', items: ref('Approval') } }), 'approvals'), ...errors('400', ...AUTH) },
      },
    },
    '/v1/approvals/{id}/decision': {
      post: {
        operationId: 'decideApproval',
        summary: 'Approve or deny; the decider recorded is the token name',
        tags: ['approvals'],
        'x-spine-permission': 'operate',
        parameters: [idParam('approval')],
        requestBody: { required: true, content: { 'application/json': { schema: fromZod(decisionBody) } } },
        responses: { '200': json(obj({ approval: ref('Approval') }), 'decided'), ...errors('400', ...AUTH, '404', '409', '413') },
      },
    },
    '/v1/audit': {
      get: {
        operationId: 'listAudit',
        summary: 'Audit events in seq order (a page of the same log the event stream carries)',
        tags: ['events'],
        'x-spine-permission': 'read',
        parameters: [q('run', 'only this run'), q('after', 'events after this seq (default 0)', { type: 'integer', minimum: 0 }), limitParam(1000, 100)],
        responses: { '200': json(obj({ events: { type: 'array', items: ref('AuditEvent') }, next: nullable(int) }), 'events; pass `next` as `after`'), ...errors('400', ...AUTH) },
      },
    },
    '/v1/events': {
      get: {
        operationId: 'eventStream',
        summary: 'Live event stream (Server-Sent Events), resumable',
        description:
          'Each message has `id: <seq>` and the AuditEvent JSON as data. After the backlog, one `event: ready` (`{"seq": N}`); before the server ends the stream, `event: end` (`{"reason", "seq"}`). Resume with the `Last-Event-ID` header or `?after=`: nothing is missed and nothing repeated.',
        tags: ['events'],
        'x-spine-permission': 'read',
        parameters: [...streamParams, { name: 'Last-Event-ID', in: 'header', description: 'resume after this seq (sent by EventSource on reconnect)', schema: str }],
        responses: { '200': { description: 'the stream', content: { 'text/event-stream': { schema: ref('AuditEvent') } } }, ...errors('400', ...AUTH, '404', '503') },
      },
    },
    '/v1/ws': {
      get: {
        operationId: 'eventSocket',
        summary: 'Live event stream over WebSocket, resumable',
        description:
          'Text messages: `{"type":"event","seq":N,"event":AuditEvent}`, one `{"type":"ready","seq":N}` after the backlog, and `{"type":"end","reason","seq"}` before the server closes. Resume with `?after=<last seq>`.',
        tags: ['events'],
        'x-spine-permission': 'read',
        parameters: streamParams,
        responses: { '101': { description: 'switching to the WebSocket protocol' }, ...errors('400', ...AUTH, '404', '426', '503') },
      },
    },
    '/v1/mcp': {
      post: {
        operationId: 'mcp',
        summary: 'MCP over Streamable HTTP (stateless, JSON responses): tools to submit work, read runs, list and decide approvals',
        description:
          'A JSON-RPC message (or batch) of the Model Context Protocol, answered with JSON. Send `Accept: application/json, text/event-stream`. Stateless: no session id; each request acts as its bearer token. Tools check scopes themselves: `get_run`, `list_approvals`, `list_agents` need viewer; `submit_work` and `decide_approval` need operator. A tool refused or failing answers `isError: true` with the Spine error code. See docs/mcp.md.',
        tags: ['mcp'],
        'x-spine-permission': 'read',
        requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', description: 'a JSON-RPC 2.0 request, notification or batch' } } } },
        responses: {
          '200': json({ type: 'object', description: 'the JSON-RPC response(s)' }, 'answered'),
          '202': { description: 'a notification or response was accepted' },
          '400': json({ type: 'object' }, 'invalid JSON (INVALID_JSON) or not a JSON-RPC message'),
          '406': json({ type: 'object' }, 'the Accept header does not allow application/json and text/event-stream'),
          ...errors(...AUTH, '413'),
        },
      },
      get: {
        operationId: 'mcpStream',
        summary: 'Server-initiated MCP stream: not offered (405); this endpoint is stateless',
        tags: ['mcp'],
        'x-spine-permission': 'read',
        responses: { '405': json({ type: 'object' }, 'method not allowed: use POST'), ...errors(...AUTH) },
      },
    },
    '/v1/a2a/{agent}/.well-known/agent-card.json': {
      get: {
        operationId: 'a2aAgentCard',
        summary: "An agent's A2A Agent Card (A2A protocol 1.0)",
        description:
          'Name, description, skills (the agent, with its contracts), the JSON-RPC interface at /v1/a2a/{agent}, streaming capability and the bearer security scheme. A2A clients find it from the base URL /v1/a2a/{agent}/. See docs/a2a.md.',
        tags: ['a2a'],
        'x-spine-permission': 'read',
        parameters: [{ name: 'agent', in: 'path', required: true, description: 'the agent name', schema: str }],
        responses: { '200': json({ type: 'object', description: 'the A2A AgentCard (JSON)' }, 'the card'), ...errors(...AUTH, '404') },
      },
    },
    '/v1/a2a/{agent}': {
      post: {
        operationId: 'a2aJsonRpc',
        summary: "The agent's A2A JSON-RPC endpoint: SendMessage, SendStreamingMessage, GetTask, CancelTask, …",
        description:
          'A2A protocol 1.0 over JSON-RPC 2.0 (send `A2A-Version: 1.0`). A message becomes an envelope on channel `a2a` addressed to the agent, and starts a run; the A2A task follows it and carries the run output as its artifact. SendStreamingMessage answers Server-Sent Events. Protocol errors are JSON-RPC errors in a 200 answer.',
        tags: ['a2a'],
        'x-spine-permission': 'operate',
        parameters: [{ name: 'agent', in: 'path', required: true, description: 'the agent name', schema: str }],
        requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', description: 'a JSON-RPC 2.0 request' } } } },
        responses: {
          '200': {
            description: 'the JSON-RPC response, or an event stream for SendStreamingMessage and SubscribeToTask',
            content: { 'application/json': { schema: { type: 'object' } }, 'text/event-stream': { schema: { type: 'object' } } },
          },
          ...errors('400', ...AUTH, '404', '413'),
        },
      },
    },
  },
  components: {
    securitySchemes: {
      bearer: { type: 'http', scheme: 'bearer', description: 'an API token (`spine tokens create`): scopes admin, operator, viewer, ingress:<channel>' },
    },
    schemas: {
      ErrorInfo: {
        type: 'object',
        properties: {
          code: { type: 'string', description: 'stable code, e.g. INVALID_REQUEST, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, INVALID_STATE, BODY_TOO_LARGE, UNROUTABLE' },
          message: str,
          issues: { type: 'array', items: obj({ path: str, message: str }) },
        },
        required: ['code', 'message'],
      },
      Error: obj({ error: ref('ErrorInfo') }),
      ApiEnvelope: fromZod(apiEnvelopeSchema),
      EnvelopeRecord: {
        type: 'object',
        properties: {
          id: str,
          channel: str,
          account: str,
          peer: obj({ kind: { enum: ['dm', 'group', 'channel'] }, id: str }),
          parentPeer: nullable(str),
          sender: nullable({ type: 'object', properties: { id: str, name: str, roles: { type: 'array', items: str } }, required: ['id'] }),
          thread: nullable(str),
          text: str,
          data: anyJson,
          idempotencyKey: { type: 'string', description: 'for API submissions: `api:` + the Idempotency-Key' },
          replyTo: anyJson,
          state: { enum: ['routed', 'routing', 'unroutable'] },
          route: { description: 'the routing decision: which binding fired and why' },
          error: nullable(ref('ErrorInfo')),
          runId: nullable(str),
          sessionKey: nullable(str),
          receivedAt: int,
        },
        required: ['id', 'channel', 'account', 'peer', 'state', 'idempotencyKey', 'receivedAt'],
      },
      Accepted: {
        type: 'object',
        properties: {
          envelope: ref('EnvelopeRecord'),
          run: nullable(ref('Run')),
          idempotencyKey: str,
          idempotencyKeyGenerated: { const: true, description: 'present when the request had no Idempotency-Key' },
          duplicate: { const: true, description: 'present when the key was seen before' },
        },
        required: ['envelope', 'run', 'idempotencyKey'],
      },
      Run: {
        type: 'object',
        properties: {
          id: str,
          agent: str,
          state: { enum: ['running', 'succeeded', 'failed', 'cancelled'] },
          input: anyJson,
          output: anyJson,
          error: nullable(ref('ErrorInfo')),
          rootTaskId: str,
          tenant: str,
          envelopeId: nullable(str),
          sessionKey: nullable(str),
          kind: { enum: ['work', 'router'] },
          idempotencyKey: nullable(str),
          createdAt: int,
          updatedAt: int,
          finishedAt: nullable(int),
        },
        required: ['id', 'agent', 'state', 'rootTaskId', 'createdAt'],
      },
      Task: {
        type: 'object',
        properties: {
          id: str,
          runId: str,
          parentId: nullable(str),
          depth: int,
          agent: str,
          state: { enum: ['queued', 'leased', 'running', 'waiting', 'retry-scheduled', 'succeeded', 'failed', 'escalated', 'dead', 'cancelled'] },
          input: anyJson,
          output: anyJson,
          error: nullable(ref('ErrorInfo')),
          turns: int,
          attempt: int,
          maxAttempts: int,
          createdAt: int,
          updatedAt: int,
          finishedAt: nullable(int),
        },
        required: ['id', 'runId', 'agent', 'state'],
      },
      Turn: {
        type: 'object',
        properties: { turn: int, actions: { type: 'array', items: { type: 'object' } }, results: { type: 'array', items: { type: 'object' } }, output: anyJson },
        required: ['turn', 'actions', 'results'],
      },
      Effect: {
        type: 'object',
        properties: {
          key: str,
          runId: str,
          taskId: str,
          turn: int,
          action: int,
          tool: str,
          inputDigest: str,
          state: { enum: ['started', 'completed', 'failed'] },
          attempts: int,
          result: anyJson,
          error: nullable(ref('ErrorInfo')),
          startedAt: int,
          completedAt: nullable(int),
        },
        required: ['key', 'tool', 'state'],
      },
      Approval: {
        type: 'object',
        properties: {
          id: str,
          runId: str,
          taskId: str,
          agent: str,
          actionKey: str,
          action: anyJson,
          kind: { enum: ['approval', 'escalation'] },
          ruleId: nullable(str),
          reason: str,
          approvers: str,
          state: { enum: ['pending', 'approved', 'denied', 'expired'] },
          requestedAt: int,
          expiresAt: nullable(int),
          decidedBy: nullable(str),
          decidedAt: nullable(int),
          decisionReason: nullable(str),
        },
        required: ['id', 'runId', 'taskId', 'state'],
      },
      AuditEvent: {
        type: 'object',
        properties: {
          seq: { type: 'integer', description: 'position in the audit log: the stream cursor' },
          at: int,
          kind: { type: 'string', description: 'e.g. envelope.received, route.decided, run.created, task.succeeded, approval.approved' },
          runId: nullable(str),
          taskId: nullable(str),
          agent: nullable(str),
          actor: nullable(str),
          digest: nullable(str),
          data: anyJson,
        },
        required: ['seq', 'at', 'kind'],
      },
    },
    responses: {
      BadRequest: json(ref('Error'), 'invalid JSON (INVALID_JSON), a body or query that breaks the schema (INVALID_REQUEST, with `issues` naming each path), or a stream cursor beyond the newest event (INVALID_CURSOR)'),
      Unauthenticated: json(ref('Error'), 'missing, malformed, unknown or revoked token (UNAUTHENTICATED); nothing was changed'),
      Forbidden: json(ref('Error'), 'the token lacks the scope (FORBIDDEN, with `needed`); nothing was changed'),
      NotFound: json(ref('Error'), 'no such resource (NOT_FOUND)'),
      Conflict: json(ref('Error'), 'not allowed in the current state (INVALID_STATE), or an Idempotency-Key reused for another body (IDEMPOTENCY_KEY_REUSED)'),
      TooLarge: json(ref('Error'), 'the body is over gateway.bodyLimitBytes (BODY_TOO_LARGE)'),
      Unprocessable: json(ref('Error'), 'well-formed but cannot be acted on'),
      UpgradeRequired: json(ref('Error'), 'a plain HTTP request to the WebSocket endpoint (UPGRADE_REQUIRED)'),
      Unavailable: json(ref('Error'), 'the gateway is draining (DRAINING)'),
    },
  },
};
