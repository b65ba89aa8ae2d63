// The OpenAPI document against the real gateway on a loopback port: every operation
// it declares is called, for success and for its errors, and every answer is checked
// against the document — its status is documented for that operation, its body is
// valid against the documented schema (ajv, JSON Schema 2020-12), and an error's code
// is one the operation declares, answered with the status the error catalogue gives
// it. The suite fails if an operation is never exercised or an app route is missing
// from the document. Also: 405 for a wrong method, a contract violation at intake is a
// 422 naming the field, and store faults are a retryable 503 (readiness included).
import { DEFAULT_BREAKERS, outcomeChange } from '../src/validation/breakers.ts';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { WebSocket } from 'ws';
import { createChannels } from '../src/channels/index.ts';
import { ContractRegistry } from '../src/contracts/registry.ts';
import { ERROR_CATALOGUE, StoreUnavailableError, isErrorCode, type FieldIssue } from '../src/core/errors.ts';
import type { TurnInput } from '../src/core/types.ts';
import type { OpenApiDocument } from '../src/gateway/app.ts';
import { compilePolicy, policySchema } from '../src/policy/rules.ts';
import type { Store } from '../src/store/store.ts';
import { Boundary } from '../src/engine/boundary.ts';
import { systemClock } from '../src/core/clock.ts';
import { compileSynthesis } from '../src/synthesis/config.ts';
import { channelSettings, discordKeys, githubHeaders, githubPush, slackHeaders, slackMessage, slackUrlVerification } from './fixtures/channels.ts';
import { envelopeBody, startTestGateway, stored, type TestGateway, type TokenName } from './fixtures/gateway-setup.ts';
import { finished, registry, until } from './helpers.ts';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

interface Operation {
  operationId: string;
  method: string;
  path: string;
  responses: Record<string, { content?: Record<string, unknown>; 'x-spine-empty-body'?: boolean }>;
  errors: string[];
}

/** What the suite reads from answers, once they are checked against the document. */
interface Body {
  envelope: { id: string };
  run: { id: string };
  tasks: Array<{ id: string }>;
  turns: unknown[];
  effects: unknown[];
  approvals: Array<{ id: string }>;
  briefs: Array<{ id: string; conflicts: unknown[] }>;
  next: string | null;
  ready: boolean;
  result: { serverInfo: { name: string } };
  id: number;
  error: unknown;
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: Body;
}

/** Calls operations of the document and checks every answer against it; remembers which statuses each operation answered. */
class Checker {
  readonly ops = new Map<string, Operation>();
  readonly seen = new Map<string, Set<number>>();
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly g: TestGateway;

  constructor(g: TestGateway, doc: OpenApiDocument) {
    this.g = g;
    this.ajv = addFormats(new Ajv2020({ strict: false, allErrors: true, validateSchema: false }));
    this.ajv.addSchema(doc, 'openapi');
    for (const [path, item] of Object.entries(doc.paths ?? {})) {
      for (const [method, op] of Object.entries(item as Record<string, { operationId: string; responses: Operation['responses']; 'x-spine-errors': string[] }>)) {
        this.ops.set(op.operationId, { operationId: op.operationId, method: method.toUpperCase(), path, responses: op.responses, errors: op['x-spine-errors'] });
        this.seen.set(op.operationId, new Set());
        // Every documented schema compiles (so every $ref resolves).
        for (const [status, r] of Object.entries(op.responses)) for (const mt of Object.keys(r.content ?? {})) this.validator(path, method, status, mt);
      }
    }
  }

  /** A validator for a schema of the document, by JSON pointer. */
  schema(pointer: string): ValidateFunction {
    let v = this.validators.get(pointer);
    if (!v) {
      v = this.ajv.compile({ $ref: `openapi#${pointer}` });
      this.validators.set(pointer, v);
    }
    return v;
  }

  private validator(path: string, method: string, status: string, mediaType: string): ValidateFunction {
    const esc = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
    return this.schema(`/paths/${esc(path)}/${method.toLowerCase()}/responses/${status}/content/${esc(mediaType)}/schema`);
  }

  /** Checks a value against a schema of the document. */
  valid(pointer: string, value: unknown, what: string): void {
    const v = this.schema(pointer);
    assert.ok(v(value), `${what}: ${this.ajv.errorsText(v.errors)}\n${JSON.stringify(value).slice(0, 1500)}`);
  }

  /** Records an answer obtained some other way (a WebSocket upgrade). */
  record(operationId: string, status: number): void {
    const op = this.ops.get(operationId);
    assert.ok(op, `${operationId} is documented`);
    assert.ok(String(status) in op.responses, `${operationId}: status ${status} is documented`);
    this.seen.get(operationId)!.add(status);
  }

  /** Calls an operation (`url` fills its path) and checks the answer. */
  async call(
    operationId: string,
    url: string,
    opts: { token?: TokenName | { raw: string } | null; body?: unknown; headers?: Record<string, string>; expect?: number; code?: string } = {},
  ): Promise<Answer> {
    const op = this.ops.get(operationId);
    assert.ok(op, `${operationId} is documented`);
    const template = new RegExp(`^${op.path.replace(/[.]/g, '\\.').replace(/\{\w+\}/g, '[^/?]+')}(\\?.*)?$`);
    assert.match(url, template, `${url} is a ${op.method} ${op.path}`);
    const headers: Record<string, string> = { ...opts.headers };
    const token = opts.token === undefined ? 'admin' : opts.token;
    if (token !== null) headers.authorization = `Bearer ${typeof token === 'string' ? this.g.tokens[token] : token.raw}`;
    let body: RequestInit['body'] | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' || opts.body instanceof Uint8Array || opts.body instanceof ReadableStream ? (opts.body as RequestInit['body']) : JSON.stringify(opts.body);
      // JSON routes require application/json (a text/plain body is a 415); a test that means another type says so.
      if (!(opts.body instanceof ReadableStream)) headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(this.g.url + url, { method: op.method, headers, redirect: 'manual', ...(body !== undefined ? { body, duplex: 'half' } : {}) });
    const text = await res.text();
    const what = `${op.method} ${url} → ${res.status} ${text.slice(0, 300)}`;
    if (opts.expect !== undefined) assert.equal(res.status, opts.expect, what);
    const documented = op.responses[String(res.status)];
    assert.ok(documented, `${what}: status not documented for ${operationId}`);
    this.seen.get(operationId)!.add(res.status);
    const mediaType = res.headers.get('content-type')?.split(';')[0]!.trim() ?? null;
    let parsed: unknown;
    if (text === '' && mediaType === null) {
      assert.ok(documented.content === undefined || documented['x-spine-empty-body'] === true, `${what}: an empty answer, but a body is documented`);
    } else {
      assert.ok(mediaType && documented.content?.[mediaType], `${what}: media type ${mediaType} is not documented (${Object.keys(documented.content ?? {}).join(', ')})`);
      parsed = mediaType === 'application/json' ? JSON.parse(text) : text;
      this.valid(`/paths/${op.path.replace(/~/g, '~0').replace(/\//g, '~1')}/${op.method.toLowerCase()}/responses/${res.status}/content/${mediaType.replace(/\//g, '~1')}/schema`, parsed, what);
    }
    // A Spine error: a code the operation declares, answered with the catalogue's status.
    const code = (parsed as { error?: { code?: unknown } } | undefined)?.error?.code;
    if (res.status >= 400 && typeof code === 'string') {
      assert.ok(isErrorCode(code), `${what}: ${code} is in the catalogue`);
      assert.ok(op.errors.includes(code), `${what}: ${code} is declared in x-spine-errors of ${operationId}`);
      assert.equal(ERROR_CATALOGUE[code].status, res.status, `${what}: the catalogue's status for ${code}`);
      if (ERROR_CATALOGUE[code].status === 503 && ERROR_CATALOGUE[code].retryable) assert.ok(res.headers.get('retry-after'), `${what}: Retry-After`);
    }
    if (opts.code !== undefined) assert.equal(code, opts.code, what);
    return { status: res.status, headers: res.headers, text, body: parsed as Body };
  }
}

/** A store whose writes (and readiness check) fail with StoreUnavailableError while `fault.on`, as a full disk would. */
function faultable(fault: { on: boolean }): (store: Store) => Store {
  return (store) =>
    new Proxy(store, {
      get(target, prop) {
        if (prop === 'checkWritable' || prop === 'acceptEnvelope') {
          const fn = (target[prop] as (...a: unknown[]) => Promise<unknown>).bind(target);
          return async (...args: unknown[]) => {
            if (fault.on) throw new StoreUnavailableError('disk full (injected)');
            return fn(...args);
          };
        }
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
}

/** The suite's Spine: an echo agent that calls a tool, an agent with an input contract, one behind an approval rule, one that fails on demand. */
function project(failing: { on: boolean }) {
  const issues: FieldIssue[] = [];
  const policy = compilePolicy(policySchema.parse({ rules: [{ id: 'sign-off', kind: 'approval', actions: ['payments.*'], tier: 'approve', approvers: 'finance', expiresIn: '1h' }] }), issues);
  assert.deepEqual(issues, []);
  const contracts = new ContractRegistry();
  const schema = {
    type: 'object',
    required: ['envelope'],
    properties: { envelope: { type: 'object', required: ['data'], properties: { data: { type: 'object', required: ['orderId'], properties: { orderId: { type: 'string' } } } } } },
  };
  assert.deepEqual(contracts.add('order@1', { schema }), []);
  const reg = registry(
    {
      echo: (input: TurnInput) => (input.task.turn === 1 ? { actions: [{ type: 'tool', tool: 'note', input: { n: 1 } }] } : { output: 'done' }),
      // A direct call over a mesh path (docs/mesh.md), and one the mesh refuses.
      caller: (input: TurnInput) => (input.task.turn === 1 ? { actions: [{ type: 'call_agent', agent: 'strict', input: { envelope: { data: { orderId: 'o-1' } } } }, { type: 'call_agent', agent: 'echo' }] } : { output: 'called' }),
      strict: { fn: () => ({ output: 'ok' }), input: 'order@1' },
      gated: (input: TurnInput) => (input.task.turn === 1 ? { actions: [{ type: 'tool', tool: 'payments.send', input: { amount: 5 } }] } : { output: 'paid' }),
      flaky: {
        fn: () => {
          if (failing.on) throw new Error('boom');
          return { output: 'ok' };
        },
        retry: { maxAttempts: 1 },
      },
      // A panel whose two experts disagree on one key: its join makes a brief (settled by priority).
      panel: {
        fn: (input: TurnInput) => (input.task.turn === 1 ? { actions: ['expertA', 'expertB'].map((agent) => ({ type: 'handoff' as const, agent })) } : { output: 'briefed' }),
        synthesis: compileSynthesis({ resolve: [{ match: '*', strategy: 'priority', order: ['expertB'] }] }, ['expertA', 'expertB'], 'panel.synthesis', issues),
      },
      expertA: () => ({ output: { claims: [{ key: 'eta', value: 3, evidence: [{ kind: 'quote', ref: 'said so' }] }, { key: 'owner', value: 'ops', evidence: [] }] } }),
      expertB: () => ({ output: { claims: [{ key: 'eta', value: 5, confidence: 0.8, evidence: [] }, { key: 'owner', value: 'ops', evidence: [] }] } }),
    },
    { note: () => 'noted', 'payments.send': () => 'sent' },
    { policy, contracts },
  );
  return { ...reg, mesh: [{ from: 'caller', to: 'strict', maxPerMinute: 1_000, maxHops: 1 }] };
}

async function gateway(t: TestContext) {
  const failing = { on: true };
  const fault = { on: false };
  const reg = project(failing);
  const keys = discordKeys();
  const g = await startTestGateway(t, {
    reg,
    settings: { bodyLimitBytes: 16 * 1024 },
    bindings: [
      { id: 'api', match: { channel: 'api' }, agent: 'echo' },
      { id: 'webhooks', match: { channel: 'webhook' }, agent: 'echo' },
    ],
    channels: createChannels(channelSettings({ discordPublicKey: keys.publicKeyHex })),
    directory: () => [{ name: 'echo', description: 'Echoes', kind: 'function', input: null, output: null }],
    wrap: faultable(fault),
  });
  await g.startWorker(reg);
  const doc = (await fetch(`${g.url}/v1/openapi.json`, { headers: { authorization: `Bearer ${g.tokens.viewer}` } }).then((r) => r.json())) as OpenApiDocument;
  return { g, doc, check: new Checker(g, doc), failing, fault, reg };
}

/** Reads an SSE stream until `event: ready`; returns the messages before it. */
async function readSse(res: Response): Promise<Array<{ event: string; data: string }>> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  const messages: Array<{ event: string; data: string }> = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (data === undefined) continue;
      if (event === 'ready') {
        await reader.cancel();
        return messages;
      }
      messages.push({ event, data });
    }
  }
  return messages;
}

const big = (bytes: number) => ({ text: 'x'.repeat(bytes) });
const chunked = (text: string) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      const bytes = new TextEncoder().encode(text);
      for (let i = 0; i < bytes.length; i += 4096) controller.enqueue(bytes.slice(i, i + 4096));
      controller.close();
    },
  });

describe('the OpenAPI document', () => {
  it('is generated from the routes: every app route is documented, and only those', async (t) => {
    const { g, doc, check } = await gateway(t);
    assert.equal(doc.openapi, '3.1.0');
    const routes = new Set(g.gw.gateway.app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path.replace(/\/:([A-Za-z_]+)/g, '/{$1}')}`));
    const documented = new Set([...check.ops.values()].map((o) => `${o.method} ${o.path}`));
    assert.deepEqual([...routes].filter((r) => !documented.has(r)), [], 'app routes missing from the document');
    assert.deepEqual([...documented].filter((r) => !routes.has(r)), [], 'documented operations the app does not serve');
    for (const op of check.ops.values()) {
      // Every path parameter is declared; every declared error code is in the catalogue and documented under its status.
      const params = (doc.paths![op.path] as Record<string, { parameters?: Array<{ in: string; name: string }> }>)[op.method.toLowerCase()]!.parameters ?? [];
      for (const [, p] of op.path.matchAll(/\{(\w+)\}/g)) assert.ok(params.some((x) => x.in === 'path' && x.name === p), `${op.path}: parameter ${p}`);
      for (const code of op.errors) {
        assert.ok(isErrorCode(code), `${op.operationId}: ${code}`);
        assert.ok(String(ERROR_CATALOGUE[code].status) in op.responses, `${op.operationId}: ${code} → ${ERROR_CATALOGUE[code].status} documented`);
      }
    }
  });

  it('matches every answer of every operation, success and error alike', async (t) => {
    const { g, check, failing, fault, reg } = await gateway(t);
    const c = check;

    // ── health and the document ──
    await c.call('healthz', '/healthz', { token: null, expect: 200 });
    await c.call('readyz', '/readyz', { token: null, expect: 200 });
    await c.call('protectedResourceMetadata', '/.well-known/oauth-protected-resource', { token: null, expect: 200 });
    await c.call('protectedResourceMetadata', '/.well-known/oauth-protected-resource?probe=%00', { token: null, expect: 400, code: 'INPUT_LIMIT' });
    await c.call('mcpProtectedResourceMetadata', '/.well-known/oauth-protected-resource/v1/mcp', { token: null, expect: 200 });
    await c.call('mcpProtectedResourceMetadata', '/.well-known/oauth-protected-resource/v1/mcp?probe=%00', { token: null, expect: 400, code: 'INPUT_LIMIT' });
    await c.call('openapi', '/v1/openapi.json', { token: 'viewer', expect: 200 });
    await c.call('openapi', '/v1/openapi.json', { token: null, expect: 401, code: 'UNAUTHENTICATED' });
    await c.call('openapi', '/v1/openapi.json', { token: 'ingressApi', expect: 403, code: 'FORBIDDEN' });

    // ── intake ──
    const sub = await c.call('submitEnvelope', '/v1/envelopes', { token: 'ingressApi', body: envelopeBody(), headers: { 'Idempotency-Key': 'k-1' }, expect: 202 });
    await c.call('submitEnvelope', '/v1/envelopes', { token: 'ingressApi', body: envelopeBody(), headers: { 'Idempotency-Key': 'k-1' }, expect: 200 });
    await c.call('submitEnvelope', '/v1/envelopes', { body: envelopeBody({ text: 'other' }), headers: { 'Idempotency-Key': 'k-1' }, expect: 409, code: 'IDEMPOTENCY_KEY_REUSED' });
    // The same key addressed to an agent is other work, not the first envelope's run.
    await c.call('submitEnvelope', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'echo' }), headers: { 'Idempotency-Key': 'k-1' }, expect: 409, code: 'IDEMPOTENCY_KEY_REUSED' });
    await c.call('submitEnvelope', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'x'.repeat(10_000) }), expect: 400, code: 'INVALID_REQUEST' });
    await c.call('submitEnvelope', '/v1/envelopes', { body: envelopeBody({ channel: 'nowhere' }), expect: 422, code: 'UNROUTABLE' });
    await c.call('submitEnvelope', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'ghost' }), expect: 422, code: 'UNKNOWN_AGENT' });
    await c.call('submitEnvelope', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'strict' }), expect: 422, code: 'CONTRACT_VIOLATION' });
    // A batch answers every envelope in order: accepted, duplicate, refused — and a bad one anywhere refuses the whole body.
    const batch = (await c.call('submitEnvelopeBatch', '/v1/envelopes:batch', {
      body: { envelopes: [{ ...envelopeBody({ text: 'b-1' }), idempotencyKey: 'b-1' }, { ...envelopeBody(), idempotencyKey: 'k-1' }, envelopeBody({ channel: 'nowhere' })] },
      expect: 200,
    })).body as unknown as { results: Array<{ status: number; error?: { code: string } }>; accepted: number; duplicates: number; refused: number };
    assert.deepEqual(batch.results.map((r) => r.status), [202, 200, 422]);
    assert.deepEqual([batch.accepted, batch.duplicates, batch.refused], [1, 1, 1]);
    assert.equal(batch.results[2]?.error?.code, 'UNROUTABLE');
    const mixed = (await c.call('submitEnvelopeBatch', '/v1/envelopes:batch', {
      token: 'operator',
      body: { envelopes: [{ ...envelopeBody({ agent: 'strict' }), idempotencyKey: 'b-2' }, { ...envelopeBody({ text: 'other' }), idempotencyKey: 'k-1' }] },
      expect: 200,
    })).body as unknown as { results: Array<{ status: number; error?: { code: string } }> };
    assert.deepEqual(mixed.results.map((r) => [r.status, r.error?.code]), [[422, 'CONTRACT_VIOLATION'], [409, 'IDEMPOTENCY_KEY_REUSED']]);
    await c.call('submitEnvelopeBatch', '/v1/envelopes:batch', { body: { envelopes: [] }, expect: 400, code: 'INVALID_REQUEST' });
    await c.call('submitEnvelopeBatch', '/v1/envelopes:batch', { token: 'ingressApi', body: { envelopes: [envelopeBody(), envelopeBody({ agent: 'echo' })] }, expect: 403, code: 'FORBIDDEN' });
    await c.call('submitEnvelopeBatch', '/v1/envelopes:batch', { token: null, body: { envelopes: [envelopeBody()] }, expect: 401, code: 'UNAUTHENTICATED' });
    await c.call('submitEnvelope', '/v1/envelopes', { body: '{"text": ', expect: 400, code: 'INVALID_JSON' });
    await c.call('submitEnvelope', '/v1/envelopes', { body: { text: 1, colour: 'red' }, expect: 400, code: 'INVALID_REQUEST' });
    await c.call('submitEnvelope', '/v1/envelopes', { body: new Uint8Array([0x7b, 0xff, 0x7d]), expect: 400, code: 'INVALID_BODY' });
    await c.call('submitEnvelope', '/v1/envelopes', { body: JSON.stringify(envelopeBody()), headers: { 'content-type': 'text/plain' }, expect: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
    await c.call('submitEnvelope', '/v1/envelopes', { body: `{"text":"x","data":${'['.repeat(65)}${']'.repeat(65)}}`, expect: 400, code: 'INPUT_LIMIT' });
    await c.call('submitEnvelope', '/v1/envelopes', { body: envelopeBody({ text: 'a\u0000b' }), expect: 400, code: 'INPUT_LIMIT' });
    await c.call('submitEnvelope', '/v1/envelopes', { body: envelopeBody(), headers: { 'Idempotency-Key': 'k'.repeat(300) }, expect: 400, code: 'INVALID_IDEMPOTENCY_KEY' });
    await c.call('submitEnvelope', '/v1/envelopes', { token: null, body: envelopeBody(), expect: 401 });
    await c.call('submitEnvelope', '/v1/envelopes', { token: 'viewer', body: envelopeBody(), expect: 403 });
    await c.call('submitEnvelope', '/v1/envelopes', { body: big(20 * 1024), expect: 413, code: 'BODY_TOO_LARGE' });
    await c.call('submitEnvelope', '/v1/envelopes', { body: chunked(JSON.stringify(big(20 * 1024))), expect: 413, code: 'BODY_TOO_LARGE' });
    fault.on = true;
    await c.call('submitEnvelope', '/v1/envelopes', { body: envelopeBody(), expect: 503, code: 'STORE_UNAVAILABLE' });
    fault.on = false;

    const envelopeId = sub.body.envelope.id;
    await c.call('getEnvelope', `/v1/envelopes/${envelopeId}`, { token: 'viewer', expect: 200 });
    await c.call('getEnvelope', '/v1/envelopes/env_nope', { expect: 404, code: 'NOT_FOUND' });
    await c.call('getEnvelope', `/v1/envelopes/${envelopeId}`, { token: { raw: 'spn_nope' }, expect: 401 });

    // ── channel webhooks: the platforms' own answers ──
    const push = JSON.stringify(githubPush);
    const hookHeaders = (raw: string) => Object.fromEntries(githubHeaders(raw).entries());
    await c.call('channelWebhook', '/v1/channels/webhook/github', { token: null, body: push, headers: hookHeaders(push), expect: 202 });
    const challenge = JSON.stringify(slackUrlVerification);
    const hello = await c.call('channelWebhook', '/v1/channels/slack/T123ABC456', { token: null, body: challenge, headers: Object.fromEntries(slackHeaders(challenge, Date.now()).entries()), expect: 200 });
    assert.deepEqual(hello.body, { challenge: slackUrlVerification.challenge });
    const botMessage = JSON.stringify(slackMessage({ bot_id: 'B1' }));
    const ignored = await c.call('channelWebhook', '/v1/channels/slack/T123ABC456', { token: null, body: botMessage, headers: Object.fromEntries(slackHeaders(botMessage, Date.now()).entries()), expect: 200 });
    assert.equal(ignored.text, '', 'Slack gets an empty 200');
    await c.call('channelWebhook', '/v1/channels/webhook/github', { token: null, body: push.replace('bugs', 'bees'), headers: hookHeaders(push), expect: 401, code: 'UNAUTHORIZED' });
    await c.call('channelWebhook', '/v1/channels/webhook/github', { token: null, body: 'not json', headers: hookHeaders('not json'), expect: 400, code: 'BAD_REQUEST' });
    await c.call('channelWebhook', '/v1/channels/pigeon/x', { token: null, body: '{}', expect: 404, code: 'UNKNOWN_CHANNEL' });
    await c.call('channelWebhook', '/v1/channels/webhook/github', { token: null, body: 'x'.repeat(20 * 1024), expect: 413, code: 'BODY_TOO_LARGE' });

    // ── runs and tasks ──
    const runId = sub.body.run.id;
    await finished(g.store, runId);
    await c.call('listRuns', '/v1/runs?limit=2', { token: 'viewer', expect: 200 });
    await c.call('listRuns', '/v1/runs?state=sleeping', { expect: 400, code: 'INVALID_REQUEST' });
    await c.call('getRun', `/v1/runs/${runId}`, { token: 'viewer', expect: 200 });
    await c.call('getRun', '/v1/runs/run_nope', { expect: 404, code: 'NOT_FOUND' });
    const tasks = await c.call('listTasks', `/v1/tasks?run=${runId}`, { token: 'viewer', expect: 200 });
    await c.call('listTasks', '/v1/tasks?run=run_nope', { expect: 404, code: 'NOT_FOUND' });
    await c.call('listTasks', '/v1/tasks?limit=0', { expect: 400, code: 'INVALID_REQUEST' });
    await c.call('listTasks', '/v1/tasks?limit=0x10', { expect: 400, code: 'INVALID_REQUEST' });
    await c.call('listTasks', '/v1/tasks?run=a%00b', { expect: 400, code: 'INPUT_LIMIT' });
    const task = await c.call('getTask', `/v1/tasks/${tasks.body.tasks[0]!.id}`, { token: 'viewer', expect: 200 });
    assert.equal(task.body.turns.length, 2, 'a task with turns, actions, results and an effect');
    assert.equal(task.body.effects.length, 1);
    await c.call('getTask', '/v1/tasks/task_nope', { expect: 404, code: 'NOT_FOUND' });

    const toCancel = await c.call('submitEnvelope', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'gated', peer: { kind: 'dm', id: 'p-2' } }), expect: 202 });
    const flaky = await c.call('submitEnvelope', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'flaky', peer: { kind: 'dm', id: 'p-3' } }), expect: 202 });
    assert.equal((await finished(g.store, flaky.body.run.id)).state, 'failed');
    await c.call('retryRun', `/v1/runs/${runId}/retry`, { token: 'operator', expect: 409, code: 'INVALID_STATE' });
    await c.call('retryRun', '/v1/runs/run_nope/retry', { token: 'operator', expect: 404 });
    await c.call('retryRun', `/v1/runs/${flaky.body.run.id}/retry`, { token: 'viewer', expect: 403 });
    failing.on = false;
    await c.call('retryRun', `/v1/runs/${flaky.body.run.id}/retry`, { token: 'operator', expect: 200 });

    // ── approvals ──
    let approvals: Array<{ id: string }> = [];
    await until('a pending approval', async () => {
      approvals = (await c.call('listApprovals', `/v1/approvals?run=${toCancel.body.run.id}`, { token: 'viewer', expect: 200 })).body.approvals;
      return approvals.length === 1;
    });
    const approvalId = approvals[0]!.id;
    await c.call('listApprovals', '/v1/approvals?state=maybe', { expect: 400, code: 'INVALID_REQUEST' });
    await c.call('decideApproval', `/v1/approvals/${approvalId}/decision`, { token: 'viewer', body: { approve: true }, expect: 403 });
    await c.call('decideApproval', `/v1/approvals/${approvalId}/decision`, { token: 'operator', body: { approve: 'yes' }, expect: 400, code: 'INVALID_REQUEST' });
    await c.call('decideApproval', `/v1/approvals/${approvalId}/decision`, { token: 'operator', body: '', expect: 400, code: 'INVALID_JSON' });
    await c.call('decideApproval', '/v1/approvals/apr_nope/decision', { token: 'operator', body: { approve: false }, expect: 404 });
    await c.call('decideApproval', `/v1/approvals/${approvalId}/decision`, { token: 'operator', body: chunked(JSON.stringify({ approve: true, reason: 'r'.repeat(20 * 1024) })), expect: 413 });
    await c.call('decideApproval', `/v1/approvals/${approvalId}/decision`, { token: 'operator', body: { approve: false, reason: 'no' }, expect: 200 });
    await c.call('decideApproval', `/v1/approvals/${approvalId}/decision`, { token: 'operator', body: { approve: true }, expect: 409, code: 'INVALID_STATE' });
    await c.call('listApprovals', '/v1/approvals?state=all', { token: 'viewer', expect: 200 });

    // ── briefs ──
    const panel = await c.call('submitEnvelope', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'panel', peer: { kind: 'dm', id: 'p-9' } }), expect: 202 });
    assert.equal((await finished(g.store, panel.body.run.id)).state, 'succeeded');
    const briefs = await c.call('listBriefs', `/v1/briefs?run=${panel.body.run.id}`, { token: 'viewer', expect: 200 });
    assert.equal(briefs.body.briefs.length, 1);
    assert.equal(briefs.body.briefs[0]!.conflicts.length, 1);
    await c.call('listBriefs', '/v1/briefs?state=done&limit=1', { token: 'viewer', expect: 200 });
    await c.call('listBriefs', '/v1/briefs?state=maybe', { token: 'viewer', expect: 400, code: 'INVALID_REQUEST' });
    await c.call('listBriefs', '/v1/briefs', { token: null, expect: 401 });
    await c.call('getBrief', `/v1/briefs/${briefs.body.briefs[0]!.id}`, { token: 'viewer', expect: 200 });
    await c.call('getBrief', '/v1/briefs/brief_nope', { token: 'viewer', expect: 404, code: 'NOT_FOUND' });

    // ── the mesh log ──
    const meshed = await c.call('submitEnvelope', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'caller', peer: { kind: 'dm', id: 'p-10' } }), expect: 202 });
    assert.equal((await finished(g.store, meshed.body.run.id)).state, 'succeeded');
    const calls = await c.call('listMeshCalls', `/v1/mesh/calls?run=${meshed.body.run.id}&limit=2`, { token: 'viewer', expect: 200 });
    assert.deepEqual((calls.body as unknown as { entries: Array<{ kind: string }> }).entries.map((e) => e.kind), ['mesh.refused', 'mesh.reply']);
    assert.ok(calls.body.next);
    await c.call('listMeshCalls', `/v1/mesh/calls?cursor=${calls.body.next}`, { token: 'viewer', expect: 200 });
    await c.call('listMeshCalls', '/v1/mesh/calls?cursor=abc', { token: 'viewer', expect: 400, code: 'INVALID_REQUEST' });
    await c.call('listMeshCalls', '/v1/mesh/calls', { token: null, expect: 401 });
    // The shim (docs/mesh.md): a capability minted for the caller's turn, as the worker does for an external agent's.
    const callerTask = (await g.store.tasks.list({ runId: meshed.body.run.id, limit: 1 }))[0]!;
    const minted = g.shim.mint({
      env: { store: g.store, registry: reg, boundary: new Boundary(g.store, reg, systemClock), clock: systemClock, workerId: 'test' },
      claimed: { task: callerTask, tenant: 'default', lease: { taskId: callerTask.id, owner: 'test', leaseNo: 0 }, session: null, history: [], results: [], openTurn: null, reply: null, origin: null },
      turn: 9,
      stop: new AbortController().signal,
    });
    const shimBody = (agent: string, token = minted.capability.token) => ({ token, agent, input: { envelope: { data: { orderId: 'o-2' } } } });
    const answered = await c.call('callMeshAgent', '/v1/mesh/call', { token: null, body: shimBody('strict'), expect: 200 });
    assert.deepEqual(answered.body, { index: 0, type: 'call_agent', ok: true, value: 'ok' });
    await c.call('callMeshAgent', '/v1/mesh/call', { token: null, body: shimBody('echo'), expect: 200 });
    await c.call('callMeshAgent', '/v1/mesh/call', { token: null, body: shimBody('strict', 'msh_forged'), expect: 403, code: 'MESH_REFUSED' });
    await c.call('callMeshAgent', '/v1/mesh/call', { token: null, body: { agent: 'strict' }, expect: 400, code: 'INVALID_REQUEST' });
    minted.revoke();

    // A run waiting for nothing more is cancelled once, then cancelling is a 409.
    const queued = await c.call('submitEnvelope', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'gated', peer: { kind: 'dm', id: 'p-4' } }), expect: 202 });
    await c.call('cancelRun', `/v1/runs/${queued.body.run.id}/cancel`, { token: 'operator', body: { why: 1 }, expect: 400, code: 'INVALID_REQUEST' });
    await c.call('cancelRun', `/v1/runs/${queued.body.run.id}/cancel`, { token: 'viewer', expect: 403 });
    await c.call('cancelRun', `/v1/runs/${queued.body.run.id}/cancel`, { token: 'operator', body: { reason: 'not needed' }, expect: 200 });
    await c.call('cancelRun', `/v1/runs/${queued.body.run.id}/cancel`, { token: 'operator', expect: 409, code: 'INVALID_STATE' });
    await c.call('cancelRun', '/v1/runs/run_nope/cancel', { token: 'operator', expect: 404 });

    // ── shared memory ──
    const put = { scope: 'team/research', key: 'pricing', value: { usd: 10 }, text: 'pricing is ten dollars', sources: ['env_1'] };
    await c.call('putMemoryFact', '/v1/memory/facts', { token: 'operator', body: put, expect: 200 });
    await c.call('putMemoryFact', '/v1/memory/facts', { token: 'operator', body: { ...put, value: { usd: 12 }, expectedVersion: 1 }, expect: 200 });
    await c.call('putMemoryFact', '/v1/memory/facts', { token: 'operator', body: { ...put, value: { usd: 13 }, expectedVersion: 1 }, expect: 409, code: 'MEMORY_CONFLICT' });
    await c.call('putMemoryFact', '/v1/memory/facts', { token: 'operator', body: { ...put, scope: 'teams/x' }, expect: 422, code: 'INVALID_SCOPE' });
    await c.call('putMemoryFact', '/v1/memory/facts', { token: 'operator', body: { ...put, ttl: 'soon' }, expect: 400, code: 'INVALID_INPUT' });
    await c.call('putMemoryFact', '/v1/memory/facts', { token: 'operator', body: { ...put, value: 'x'.repeat(70 * 1024) }, expect: 413 });
    await c.call('putMemoryFact', '/v1/memory/facts', { token: 'operator', body: { scope: 'global' }, expect: 400, code: 'INVALID_REQUEST' });
    await c.call('putMemoryFact', '/v1/memory/facts', { token: 'viewer', body: put, expect: 403 });
    const hits = await c.call('searchMemory', '/v1/memory/search?q=pricing%20dollars', { token: 'viewer', expect: 200 });
    assert.equal((hits.body as unknown as { hits: unknown[] }).hits.length, 1);
    await c.call('searchMemory', '/v1/memory/search?q=pricing&tenant=other', { token: 'viewer', expect: 200 });
    await c.call('searchMemory', '/v1/memory/search?q=x&scope=nowhere/x', { token: 'viewer', expect: 422, code: 'INVALID_SCOPE' });
    await c.call('searchMemory', '/v1/memory/search', { token: 'viewer', expect: 400, code: 'INVALID_REQUEST' });
    await c.call('getMemoryFact', '/v1/memory/facts?scope=team/research&key=pricing', { token: 'viewer', expect: 200 });
    await c.call('getMemoryFact', '/v1/memory/facts?scope=team/research&key=pricing&asOf=1', { token: 'viewer', expect: 404, code: 'NOT_FOUND' });
    await c.call('memoryHistory', '/v1/memory/history?scope=team/research&key=pricing', { token: 'viewer', expect: 200 });
    await c.call('memoryHistory', '/v1/memory/history?scope=team/research', { token: 'viewer', expect: 400, code: 'INVALID_REQUEST' });
    await c.call('listMemoryConflicts', '/v1/memory/conflicts', { token: 'viewer', expect: 200 });
    await c.call('listMemoryConflicts', '/v1/memory/conflicts?state=maybe', { token: 'viewer', expect: 400, code: 'INVALID_REQUEST' });
    await c.call('forgetMemory', '/v1/memory/forget', { token: 'operator', body: { source: 'env_1', dryRun: true }, expect: 200 });
    await c.call('forgetMemory', '/v1/memory/forget', { token: 'operator', body: { run: 'r', agent: 'a' }, expect: 400, code: 'INVALID_INPUT' });
    await c.call('forgetMemory', '/v1/memory/forget', { token: 'viewer', body: { run: 'r' }, expect: 403 });

    // ── validation: gate verdicts as records ──
    const gatedRun = sub.body.run.id;
    await g.store.audit.append(
      [{ kind: 'gate.verdict', runId: gatedRun, taskId: null, agent: 'echo', data: { key: 'k', crossing: 'output', name: 'echo', gate: 'brief', mode: 'shadow', verdict: 'fail', outcome: 'block', reasons: ['too long'], inputDigest: 'd', configVersion: 'v' } }],
      Date.now(),
    );
    const verdicts = await c.call('listGateVerdicts', `/v1/gates/verdicts?run=${gatedRun}&mode=shadow`, { token: 'viewer', expect: 200 });
    assert.deepEqual((verdicts.body as unknown as { verdicts: Array<{ gate: string; outcome: string }> }).verdicts.map((v) => [v.gate, v.outcome]), [['brief', 'block']]);
    await c.call('listGateVerdicts', '/v1/gates/verdicts?outcome=maybe', { token: 'viewer', expect: 400, code: 'INVALID_REQUEST' });
    await c.call('listGateVerdicts', '/v1/gates/verdicts?run=run_nope', { token: 'viewer', expect: 404, code: 'NOT_FOUND' });

    await g.store.breakers.update('tool:flaky', outcomeChange('tool:flaky', false, 'TOOL_FAILED', { ...DEFAULT_BREAKERS, failures: 1 }, Date.now(), { actor: 'test' }), Date.now());
    const breakers = await c.call('listBreakers', '/v1/breakers', { token: 'viewer', expect: 200 });
    assert.deepEqual((breakers.body as unknown as { breakers: Array<{ key: string; state: string }> }).breakers.map((b) => [b.key, b.state]), [['tool:flaky', 'open']]);
    await c.call('listBreakers', '/v1/breakers', { token: null, expect: 401, code: 'UNAUTHENTICATED' });
    await c.call('resetBreaker', '/v1/breakers/reset', { token: 'viewer', body: { key: 'tool:flaky' }, expect: 403, code: 'FORBIDDEN' });
    await c.call('resetBreaker', '/v1/breakers/reset', { token: 'operator', body: { key: 3 }, expect: 400, code: 'INVALID_REQUEST' });
    await c.call('resetBreaker', '/v1/breakers/reset', { token: 'operator', body: { key: 'tool:nope' }, expect: 404, code: 'NOT_FOUND' });
    await c.call('resetBreaker', '/v1/breakers/reset', { token: 'operator', body: { key: 'tool:flaky' }, expect: 200 });
    assert.equal((await g.store.breakers.get('tool:flaky'))!.state, 'closed');
    // The health view: breakers, probe results, stuck work the sweep raised.
    await g.store.probes.claim('agent:remote', 'wrk_t', Date.now(), 5_000);
    await g.store.probes.finish('agent:remote', 'wrk_t', { ok: false, ms: 12, detail: 'GET http://x/health: HTTP 500' }, Date.now(), Date.now() + 30_000);
    await g.store.stuck.record({ kind: 'run-over-sla', subject: runId, runId, since: 1, detail: 'late', action: 'report' }, [{ kind: 'stuck.run-over-sla', runId, actor: 'test', data: {} }], null, Date.now());
    const health = (await c.call('getHealth', '/v1/health', { token: 'viewer', expect: 200 })).body as unknown as { probes: Array<{ key: string; ok: boolean }>; stuck: Array<{ kind: string }> };
    assert.deepEqual(health.probes.map((p) => [p.key, p.ok]), [['agent:remote', false]]);
    assert.deepEqual(health.stuck.map((f) => f.kind), ['run-over-sla']);
    await c.call('getHealth', '/v1/health', { token: null, expect: 401, code: 'UNAUTHENTICATED' });

    // ── audit and the live streams ──
    await c.call('listAudit', '/v1/audit?limit=5', { token: 'viewer', expect: 200 });
    await c.call('listAudit', '/v1/audit?after=-1', { expect: 400, code: 'INVALID_REQUEST' });
    const verified = await c.call('verifyAudit', `/v1/audit/verify?run=${runId}`, { token: 'viewer', expect: 200 });
    assert.equal((verified.body as unknown as { verdict: string }).verdict, 'clean');
    await c.call('verifyAudit', '/v1/audit/verify', { token: 'viewer', expect: 200 });
    await c.call('verifyAudit', '/v1/audit/verify?since=yesterday', { expect: 400, code: 'INVALID_REQUEST' });
    await c.call('verifyAudit', '/v1/audit/verify', { token: null, expect: 401 });
    const graph = await c.call('why', `/v1/why/${runId}`, { token: 'viewer', expect: 200 });
    assert.deepEqual((graph.body as unknown as { steps: Array<{ kind: string }> }).steps.map((s) => s.kind).slice(-3), ['run', 'envelope', 'binding']);
    await c.call('why', `/v1/why/${encodeURIComponent(`${runId}/${tasks.body.tasks[0]!.id}/1/0`)}`, { token: 'viewer', expect: 200 });
    await c.call('why', '/v1/why/run_nope', { token: 'viewer', expect: 404, code: 'NOT_FOUND' });
    await c.call('eventStream', '/v1/events?after=zero', { expect: 400, code: 'INVALID_REQUEST' });
    await c.call('eventStream', '/v1/events?after=99999999', { expect: 400, code: 'INVALID_CURSOR' });
    await c.call('eventStream', '/v1/events?run=run_nope', { expect: 404, code: 'NOT_FOUND' });
    await c.call('eventStream', '/v1/events', { token: null, expect: 401 });
    const stream = await fetch(`${g.url}/v1/events?after=0&access_token=${g.tokens.viewer}`);
    assert.equal(stream.status, 200);
    assert.equal(stream.headers.get('content-type')?.split(';')[0], 'text/event-stream');
    c.record('eventStream', 200);
    const messages = await readSse(stream);
    assert.ok(messages.length > 5);
    for (const m of messages) c.valid('/components/schemas/AuditEvent', JSON.parse(m.data), `SSE ${m.event}`);

    await c.call('eventSocket', '/v1/ws', { token: 'viewer', expect: 426, code: 'UPGRADE_REQUIRED' });
    await c.call('eventSocket', '/v1/ws?after=99999999', { expect: 400, code: 'INVALID_CURSOR' });
    await c.call('eventSocket', '/v1/ws?run=run_nope', { expect: 404 });
    await c.call('eventSocket', '/v1/ws', { token: null, expect: 401 });
    const first = await new Promise<{ status: number; message: unknown }>((resolve, reject) => {
      const ws = new WebSocket(`${g.url.replace('http', 'ws')}/v1/ws?after=0`, { headers: { authorization: `Bearer ${g.tokens.viewer}` } });
      let status = 0;
      ws.on('upgrade', (res) => (status = res.statusCode ?? 0));
      ws.on('message', (data) => {
        resolve({ status, message: JSON.parse((data as Buffer).toString('utf8')) });
        ws.close();
      });
      ws.on('error', reject);
    });
    c.record('eventSocket', first.status);
    const wsEvent = first.message as { type: string; seq: number; event: unknown };
    assert.equal(wsEvent.type, 'event');
    c.valid('/components/schemas/AuditEvent', wsEvent.event, 'WebSocket event');

    // ── MCP: JSON-RPC, with the transport's own protocol errors ──
    const mcpHeaders = { accept: 'application/json, text/event-stream' };
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'openapi-test', version: '1' } } };
    const initialized = await c.call('mcp', '/v1/mcp', { token: 'viewer', body: init, headers: mcpHeaders, expect: 200 });
    assert.equal(initialized.body.result.serverInfo.name, 'spine');
    await c.call('mcp', '/v1/mcp', { token: 'viewer', body: { jsonrpc: '2.0', method: 'notifications/initialized' }, headers: mcpHeaders, expect: 202 });
    await c.call('mcp', '/v1/mcp', { token: 'viewer', body: { hello: 'world' }, headers: mcpHeaders, expect: 400 });
    await c.call('mcp', '/v1/mcp', { token: 'viewer', body: '{"jsonrpc": ', headers: mcpHeaders, expect: 400, code: 'INVALID_JSON' });
    await c.call('mcp', '/v1/mcp', { token: 'viewer', body: init, headers: { accept: 'text/html' }, expect: 406 });
    await c.call('mcp', '/v1/mcp', { token: 'viewer', body: JSON.stringify(init), headers: { ...mcpHeaders, 'content-type': 'text/plain' }, expect: 415 });
    await c.call('mcp', '/v1/mcp', { token: 'ingressApi', body: init, headers: mcpHeaders, expect: 403 });
    await c.call('mcp', '/v1/mcp', { token: 'viewer', body: big(20 * 1024), headers: mcpHeaders, expect: 413 });

    // ── A2A ──
    await c.call('a2aAgentCard', '/v1/a2a/echo/.well-known/agent-card.json', { token: 'viewer', expect: 200 });
    await c.call('a2aAgentCard', '/v1/a2a/ghost/.well-known/agent-card.json', { token: 'viewer', expect: 404, code: 'NOT_FOUND' });
    await c.call('a2aAgentCard', '/v1/a2a/echo/.well-known/agent-card.json', { token: 'ingressApi', expect: 403 });
    const rpc = await c.call('a2aJsonRpc', '/v1/a2a/echo', { token: 'operator', body: { jsonrpc: '2.0', id: 7, method: 'GetTask', params: { id: 'task-nope' } }, headers: { 'a2a-version': '1.0' }, expect: 200 });
    assert.equal(rpc.body.id, 7);
    assert.ok(rpc.body.error, 'an unknown task is a JSON-RPC error in a 200');
    await c.call('a2aJsonRpc', '/v1/a2a/ghost', { token: 'operator', body: { jsonrpc: '2.0', id: 1, method: 'GetTask', params: { id: 'x' } }, expect: 404 });
    await c.call('a2aJsonRpc', '/v1/a2a/echo', { token: 'viewer', body: { jsonrpc: '2.0', id: 1, method: 'GetTask', params: { id: 'x' } }, expect: 403 });
    await c.call('a2aJsonRpc', '/v1/a2a/echo', { token: 'operator', body: 'nope', expect: 400, code: 'INVALID_JSON' });
    await c.call('a2aJsonRpc', '/v1/a2a/echo', { token: 'operator', body: big(20 * 1024), expect: 413 });

    // ── store faults and draining: retryable 503s, and readiness follows ──
    fault.on = true;
    const down = await c.call('readyz', '/readyz', { token: null, expect: 503, code: 'STORE_UNAVAILABLE' });
    assert.equal(down.body.ready, false);
    fault.on = false;
    await c.call('readyz', '/readyz', { token: null, expect: 200 });
    // ── metrics, the live view and the dashboard's session ──
    await c.call('metrics', '/metrics', { token: 'viewer', expect: 200 });
    await c.call('metrics', '/metrics', { token: null, expect: 401, code: 'UNAUTHENTICATED' });
    await c.call('observe', '/v1/observe', { token: 'viewer', expect: 200 });
    await c.call('observe', '/v1/observe', { token: 'ingressApi', expect: 403, code: 'FORBIDDEN' });
    const signIn = await c.call('dashboard', '/', { token: null, expect: 200 });
    await c.call('dashboard', '/?x=%00', { token: null, expect: 400, code: 'INPUT_LIMIT' });
    assert.match(signIn.text, /name="token"/);
    const session = { cookie: `spine_session=${g.tokens.viewer}` };
    assert.match((await c.call('dashboard', '/', { token: null, headers: session, expect: 200 })).text, /meta name="csrf-token"/);
    await c.call('loginLink', '/login?code=unknown', { token: null, expect: 401 });
    const code = g.gw.gateway.logins.issue(g.tokens.viewer);
    const linked = await c.call('loginLink', `/login?code=${code}`, { token: null, expect: 303 });
    assert.match(linked.headers.get('set-cookie')!, /^spine_session=.+; Path=\/; HttpOnly; SameSite=Strict/);
    await c.call('loginLink', `/login?code=${code}`, { token: null, expect: 401 }); // once only
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    await c.call('login', '/login', { token: null, body: `token=${encodeURIComponent(g.tokens.viewer)}`, headers: form, expect: 303 });
    await c.call('login', '/login', { token: null, body: { token: 'spn_not-a-token' }, expect: 401 });
    await c.call('login', '/login', { token: null, body: { token: g.tokens.viewer }, headers: { origin: 'https://elsewhere.example' }, expect: 403, code: 'FORBIDDEN' });
    await c.call('logout', '/logout', { token: null, body: 'csrf=forged', headers: { ...form, ...session }, expect: 403, code: 'FORBIDDEN' });
    await c.call('logout', '/logout', { token: null, body: 'csrf=', headers: form, expect: 303 });
    const script = await c.call('dashboardScript', '/dashboard.js', { token: null, expect: 200 });
    await c.call('dashboardScript', '/dashboard.js', { token: null, headers: { 'if-none-match': script.headers.get('etag')! }, expect: 304 });
    await c.call('dashboardScript', '/dashboard.js?v=%00', { token: null, expect: 400, code: 'INPUT_LIMIT' });
    // A cookie session cannot change anything without the page's CSRF token.
    await c.call('cancelRun', `/v1/runs/${runId}/cancel`, { token: null, body: {}, headers: session, expect: 403, code: 'FORBIDDEN' });

    g.gw.gateway.drain();
    await c.call('readyz', '/readyz', { token: null, expect: 503, code: 'DRAINING' });
    await c.call('eventStream', '/v1/events', { token: 'viewer', expect: 503, code: 'DRAINING' });
    await c.call('eventSocket', '/v1/ws', { token: 'viewer', expect: 503, code: 'DRAINING' });

    // A NUL in any path or query is refused at the door, on every route (PostgreSQL cannot store it).
    await c.call('healthz', '/healthz?probe=%00', { token: null, expect: 400, code: 'INPUT_LIMIT' });

    // ── every operation was exercised, for success and (where it has any) for an error ──
    for (const op of c.ops.values()) {
      const seen = [...c.seen.get(op.operationId)!];
      assert.ok(seen.some((s) => s < 400), `${op.operationId} was never answered with success (saw ${seen.join(', ') || 'nothing'})`);
      if (Object.keys(op.responses).some((s) => Number(s) >= 400)) assert.ok(seen.some((s) => s >= 400), `${op.operationId} was never answered with an error`);
    }
  });
});

describe('gateway errors', () => {
  it('a wrong method on an existing path is a 405 with Allow; an unknown path a 404', async (t) => {
    const { g, check } = await gateway(t);
    for (const [method, path, allow] of [
      ['DELETE', '/v1/runs', 'GET, HEAD'],
      ['GET', '/v1/envelopes', 'POST'],
      ['PUT', '/v1/runs/run_1/cancel', 'POST'],
      ['GET', '/v1/mcp', 'POST'],
      ['POST', '/healthz', 'GET, HEAD'],
    ] as const) {
      const r = await fetch(g.url + path, { method, headers: { authorization: `Bearer ${g.tokens.admin}` } });
      assert.equal(r.status, 405, `${method} ${path}`);
      assert.equal(r.headers.get('allow'), allow);
      const body = (await r.json()) as { error: { code: 'METHOD_NOT_ALLOWED' } };
      check.valid('/components/schemas/Error', body, `${method} ${path}`);
      assert.equal(body.error.code, 'METHOD_NOT_ALLOWED');
      assert.equal(ERROR_CATALOGUE.METHOD_NOT_ALLOWED.status, 405);
    }
    const missing = await fetch(`${g.url}/v1/nothing-here`);
    assert.equal(missing.status, 404);
    check.valid('/components/schemas/Error', await missing.json(), 'an unknown route');
  });

  it('input that breaks the agent input contract is a 422 CONTRACT_VIOLATION naming the field, and stores nothing', async (t) => {
    const { g } = await gateway(t);
    const r = await g.call('POST', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'strict', data: { orderId: 42 } }) });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.body.error.code, 'CONTRACT_VIOLATION');
    assert.match(r.body.error.message, /envelope\.data\.orderId/);
    assert.match(r.body.error.message, /order@1/);
    assert.deepEqual(await stored(g.store), { envelopes: 0, runs: 0 });
    const ok = await g.call('POST', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'strict', data: { orderId: 'A-1' } }) });
    assert.equal(ok.status, 202, ok.text);
  });

  it('a store that cannot write answers 503 STORE_UNAVAILABLE with Retry-After, readiness too, until it recovers', async (t) => {
    const { g, fault } = await gateway(t);
    assert.equal((await g.call('GET', '/readyz', { token: null })).status, 200);
    fault.on = true;
    const ready = await g.call('GET', '/readyz', { token: null });
    assert.equal(ready.status, 503);
    assert.equal(ready.body.error.code, 'STORE_UNAVAILABLE');
    assert.equal(ready.headers.get('retry-after'), '1');
    const write = await g.call('POST', '/v1/envelopes', { body: envelopeBody() });
    assert.equal(write.status, 503);
    assert.equal(write.body.error.code, 'STORE_UNAVAILABLE');
    assert.match(write.body.error.message, /disk full/);
    assert.equal(write.headers.get('retry-after'), '1');
    assert.equal((await g.call('GET', '/v1/runs', { token: 'viewer' })).status, 200, 'reads still work');
    fault.on = false;
    assert.equal((await g.call('GET', '/readyz', { token: null })).status, 200);
    assert.equal((await g.call('POST', '/v1/envelopes', { body: envelopeBody() })).status, 202);
  });
});
