// An API fuzzer driven by the OpenAPI document, property-based with fast-check: every
// operation of the document is called with generated path ids, query values and
// bodies — positive ones and negative ones (wrong types, unknown fields, oversized,
// deep, NUL-bearing, text/plain) — with no token, and with viewer, operator, ingress
// and admin tokens, on whichever backend the suite runs on. Every answer is checked:
//   - no 5xx;
//   - its status is documented for the operation;
//   - its body is valid against the documented schema, an error's code is declared;
//   - a negative example gets a 4xx;
//   - no route is reachable without its scope (401/403, nothing else).
// Seeded and bounded (SPINE_FUZZ_RUNS, default 3000; SPINE_FUZZ_SEED); a longer run:
// `npm run fuzz:api` (20,000 requests).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import fc from 'fast-check';
import type { OpenApiDocument } from '../../src/gateway/app.ts';
import { isAllowed, type Permission, type Principal } from '../../src/gateway/auth.ts';
import { SCOPES, startTestGateway, type TokenName } from '../fixtures/gateway-setup.ts';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

const RUNS = Number(process.env.SPINE_FUZZ_RUNS ?? 3000);
const SEED = Number(process.env.SPINE_FUZZ_SEED ?? 20261207);
const BODY_LIMIT = 16 * 1024;

/** Streams never end on their own (SSE, WebSocket; an A2A stream may be asked for): called by test/openapi.test.ts instead. */
const SKIPPED = new Set(['eventStream', 'eventSocket', 'a2aJsonRpc']);

interface Op {
  id: string;
  method: string;
  path: string;
  permission: Permission;
  query: Array<{ name: string; schema: { type?: string; enum?: string[] } }>;
  hasBody: boolean;
  responses: Record<string, { content?: Record<string, unknown> }>;
  errors: string[];
}

type Body =
  | { kind: 'json'; value: unknown; negative: false }
  | { kind: 'raw'; text: string; type: string | null; negative: boolean; why: string };

const TOKENS: ReadonlyArray<TokenName | null> = [null, 'viewer', 'operator', 'ingressApi', 'admin'];

const idValue = fc.oneof(
  fc.string({ maxLength: 24 }),
  fc.constantFrom('run_1', 'task_x', 'env_0', '.x.', '%2E%2E', 'a'.repeat(300), '0x10', ' ', 'ünï', '🙂'),
  fc.constant('%00'),
);
const queryValue = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('0', '1', '16', '0x10', '-1', '1e3', '99999999999999999999', ' 5', 'all', 'pending', 'queued', 'running', 'true'),
  fc.constant('%00'),
);

const deep = (depth: number) => `{"text":"d","data":${'['.repeat(depth)}${']'.repeat(depth)}}`;

const bodyArb: fc.Arbitrary<Body> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((value): Body => ({ kind: 'json', value, negative: false })),
  fc
    .record({ text: fc.string({ maxLength: 40 }), sender: fc.option(fc.record({ id: fc.string({ minLength: 1, maxLength: 10 }) }), { nil: undefined }) })
    .map((value): Body => ({ kind: 'json', value, negative: false })),
  fc.integer({ min: 65, max: 6_000 }).map((d): Body => ({ kind: 'raw', text: deep(d), type: 'application/json', negative: true, why: `nested ${d} deep` })),
  fc.string({ maxLength: 10 }).map((s): Body => ({ kind: 'raw', text: JSON.stringify({ text: `${s}\u0000`, approve: true, jsonrpc: '2.0', method: 'x', id: 1 }), type: 'application/json', negative: true, why: 'NUL' })),
  fc.constantFrom('42', '"str"', '[]', 'null', 'true').map((t): Body => ({ kind: 'raw', text: t, type: 'application/json', negative: true, why: 'not an object' })),
  fc.constant<Body>({ kind: 'raw', text: '{"zzz_unknown": 1}', type: 'application/json', negative: true, why: 'unknown field only' }),
  fc.constant<Body>({ kind: 'raw', text: '{"text": ', type: 'application/json', negative: true, why: 'malformed JSON' }),
  fc.constant<Body>({ kind: 'raw', text: '{"text":"hi"}', type: 'text/plain', negative: true, why: 'text/plain' }),
  fc.constant<Body>({ kind: 'raw', text: JSON.stringify({ text: 'x'.repeat(BODY_LIMIT + 10) }), type: 'application/json', negative: true, why: 'oversized' }),
);

describe('API fuzzer (OpenAPI-driven, fast-check)', () => {
  it(`${RUNS} generated requests: no 5xx, documented statuses and bodies, 4xx for negative examples, no route without its scope`, { timeout: 600_000 }, async (t) => {
    const g = await startTestGateway(t, { settings: { bodyLimitBytes: BODY_LIMIT } });
    const doc = (await (await fetch(`${g.url}/v1/openapi.json`, { headers: { authorization: `Bearer ${g.tokens.admin}` } })).json()) as OpenApiDocument;
    const ajv = addFormats(new Ajv2020({ strict: false, allErrors: true, validateSchema: false }));
    ajv.addSchema(doc, 'openapi');
    const validators = new Map<string, ValidateFunction>();
    const validator = (pointer: string) => {
      let v = validators.get(pointer);
      if (!v) validators.set(pointer, (v = ajv.compile({ $ref: `openapi#${pointer}` })));
      return v;
    };
    const esc = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

    const ops: Op[] = [];
    for (const [path, item] of Object.entries(doc.paths ?? {})) {
      for (const [method, raw] of Object.entries(item as Record<string, Record<string, unknown>>)) {
        const op = raw as { operationId: string; parameters?: Array<{ in: string; name: string; schema: Op['query'][number]['schema'] }>; requestBody?: unknown; responses: Op['responses']; 'x-spine-errors': string[]; 'x-spine-permission': Permission };
        if (SKIPPED.has(op.operationId)) continue;
        ops.push({
          id: op.operationId,
          method: method.toUpperCase(),
          path,
          permission: op['x-spine-permission'],
          query: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => ({ name: p.name, schema: p.schema })),
          hasBody: op.requestBody !== undefined,
          responses: op.responses,
          errors: op['x-spine-errors'] ?? [],
        });
      }
    }
    assert.ok(ops.length >= 15, `the document has the operations (${ops.length})`);
    const principals: Record<TokenName, Principal> = Object.fromEntries(
      Object.entries(SCOPES).map(([n, scopes]) => [n, { name: n, tokenId: n, scopes: [...scopes] }]),
    ) as unknown as Record<TokenName, Principal>;
    const calls = new Map<string, number>();

    const request = fc.record({
      op: fc.constantFrom(...ops),
      token: fc.constantFrom(...TOKENS),
      ids: fc.array(idValue, { minLength: 3, maxLength: 3 }),
      query: fc.array(fc.tuple(fc.nat(20), queryValue), { maxLength: 3 }),
      unknownQuery: fc.boolean(),
      body: bodyArb,
    });

    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const { op } = r;
        let i = 0;
        const path = op.path.replace(/\{\w+\}/g, () => {
          const v = r.ids[i++ % r.ids.length]!;
          // `.` and `..` segments are resolved by the URL parser before the request is sent: another path.
          if (v === '.' || v === '..' || v.toLowerCase() === '%2e%2e') return 'dots';
          return v === '%00' ? 'x%00' : encodeURIComponent(v) || 'x';
        });
        const qs = new URLSearchParams();
        let nulInUrl = path.includes('%00');
        for (const [n, v] of r.query) {
          const p = op.query[n % Math.max(op.query.length, 1)];
          if (!p) continue;
          if (v === '%00') nulInUrl = true;
          else qs.set(p.name, v);
        }
        if (r.unknownQuery) qs.set('zzz', '1');
        let url = path + (qs.size ? `?${qs.toString()}` : '');
        if (nulInUrl && !path.includes('%00')) url += `${qs.size ? '&' : '?'}${op.query[0]?.name ?? 'q'}=%00`;

        const headers: Record<string, string> = {};
        if (r.token) headers.authorization = `Bearer ${g.tokens[r.token]}`;
        if (op.id === 'mcp') headers.accept = 'application/json, text/event-stream';
        let body: string | undefined;
        let negative = nulInUrl;
        let why = nulInUrl ? 'NUL in the URL' : '';
        if (op.hasBody) {
          if (r.body.kind === 'json') {
            body = JSON.stringify(r.body.value);
            headers['content-type'] = 'application/json';
          } else {
            body = r.body.text;
            if (r.body.type) headers['content-type'] = r.body.type;
            // An array is a JSON-RPC batch to MCP (an empty one is accepted), not a wrong type.
            const batch = op.id === 'mcp' && r.body.text.startsWith('[');
            negative ||= r.body.negative && !batch;
            why ||= r.body.why;
          }
        }
        // redirect: 'manual': a 303 (the dashboard's sign-in and sign-out) is the answer to check, not the page it points to.
        const res = await fetch(g.url + url, { method: op.method, headers, redirect: 'manual', ...(body !== undefined ? { body } : {}) });
        const text = await res.text();
        const what = `${op.method} ${url.slice(0, 200)} [${r.token ?? 'no token'}${why ? `; ${why}` : ''}] → ${res.status} ${text.slice(0, 300)}`;
        calls.set(op.id, (calls.get(op.id) ?? 0) + 1);

        assert.ok(res.status < 500, `no 5xx: ${what}`);
        const documented = op.responses[String(res.status)];
        assert.ok(documented, `status documented for ${op.id}: ${what}`);

        const allowed = op.permission === 'public' || (r.token !== null && isAllowed(principals[r.token], op.permission));
        if (!allowed) assert.ok(res.status === 401 || res.status === 403, `no route without its scope: ${what}`);
        else if (negative) assert.ok(res.status >= 400 && res.status < 500, `a negative example gets a 4xx: ${what}`);

        const mediaType = res.headers.get('content-type')?.split(';')[0]!.trim();
        if (mediaType && documented.content?.[mediaType] !== undefined && mediaType.includes('json')) {
          const parsed = JSON.parse(text) as { error?: { code?: string } };
          const v = validator(`/paths/${esc(op.path)}/${op.method.toLowerCase()}/responses/${res.status}/content/${esc(mediaType)}/schema`);
          assert.ok(v(parsed), `body valid against the document: ${what}: ${ajv.errorsText(v.errors)}`);
          const code = parsed.error?.code;
          if (res.status >= 400 && typeof code === 'string' && op.id !== 'mcp') assert.ok(op.errors.includes(code), `${code} is declared by ${op.id}: ${what}`);
        }
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    t.diagnostic(`seed ${SEED}, ${RUNS} requests over ${calls.size} operations: ${[...calls].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    assert.equal(calls.size, ops.length, 'every operation was called');
  });
});
