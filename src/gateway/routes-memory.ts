import { z } from '@hono/zod-openapi';
import { CONFLICT_STRATEGIES, FACT_TRUST, SEARCH_MODES } from '../core/memory.ts';
import { embedderFor } from '../engine/memory-actions.ts';
import { SpineError } from '../core/errors.ts';
import { factHistory, forgetFacts, getFact, listConflicts, putFact, searchFacts } from '../memory/operator.ts';
import { CONFLICT_STATES, type FactVersion, type MemoryConflict } from '../store/memory.ts';
import type { GatewayModule } from './api.ts';
import { AUTH, BODY, SYSTEM, jsonBody, route } from './route-kit.ts';
import { check } from './schemas.ts';
import { json, type Check, type Same } from './wire.ts';

/**
 * `/v1/memory/…`: shared memory for operators and tools outside Spine (docs/memory.md).
 * A token reads every scope of the tenant it names (`?tenant=`, default `default`);
 * `read` tokens search and read, `operate` tokens write (trust `owner`) and forget.
 */

const int = z.number().int();
const str = z.string();
const tenant = z.string().min(1).max(128).optional().openapi({ description: 'whose memory (default: default); tenants never see each other’s facts' });
const scopeQ = z.string().min(1).max(256).openapi({ description: 'a scope: global, team/<name>, agent/<name>, run/<id>, session/<key>, tenant/<id> (with sub-paths)' });
const asOf = z.coerce.number().int().min(0).optional().openapi({ description: 'what was true at this time (epoch ms)' });

export const fact = z
  .strictObject({
    id: str,
    tenant: str,
    scope: str,
    key: str,
    version: int,
    supersedes: int.nullable(),
    value: json,
    text: str.nullable(),
    validFrom: int,
    validTo: int.nullable(),
    writtenBy: z.strictObject({ agent: str.nullable(), run: str.nullable(), task: str.nullable(), turn: int.nullable(), actor: str }),
    sources: z.array(str),
    trust: z.enum(FACT_TRUST),
    expiresAt: int.nullable(),
    tombstone: z.boolean(),
  })
  .openapi('Fact', { description: 'one version of a fact' });

export const conflict = z
  .strictObject({
    id: str,
    tenant: str,
    scope: str,
    key: str,
    expectedVersion: int,
    currentVersion: int,
    proposed: json,
    proposedText: str.nullable(),
    strategy: z.enum(CONFLICT_STRATEGIES),
    state: z.enum(CONFLICT_STATES),
    resolvedVersion: int.nullable(),
    resolvedBy: str.nullable(),
    writtenBy: z.strictObject({ agent: str.nullable(), run: str.nullable(), task: str.nullable(), turn: int.nullable(), actor: str }),
    createdAt: int,
    resolvedAt: int.nullable(),
    approvalId: str.nullable().openapi({ description: 'strategy human: the approval whose options are the candidates' }),
    mergeRun: str.nullable().openapi({ description: "strategy agent: the merge agent's run" }),
  })
  .openapi('MemoryConflict', { description: 'a compare-and-set write that met a newer version, in the merge queue' });

const putBody = z.strictObject({
  scope: str,
  key: str,
  value: json,
  text: str.optional(),
  expectedVersion: int.min(0).optional().openapi({ description: 'compare-and-set: the version read (0: must not exist)' }),
  ttl: z.union([int.positive(), str]).optional().openapi({ description: 'time to live: ms, or 30s, 15m, 4h, 7d' }),
  sources: z.array(str).max(100).optional(),
});
const forgetBody = z.strictObject({
  run: str.optional(),
  agent: str.optional(),
  source: str.optional(),
  dryRun: z.boolean().optional().openapi({ description: 'list what would be forgotten; change nothing' }),
});

const READ_ERRORS = ['INVALID_REQUEST', 'INVALID_SCOPE', ...AUTH, ...SYSTEM] as const;

export const searchMemory = route({
  method: 'get',
  path: '/v1/memory/search',
  operationId: 'searchMemory',
  summary: 'Live facts matching `q` (its words, its meaning, or both fused), best first',
  tags: ['memory'],
  'x-spine-permission': 'read',
  errors: READ_ERRORS,
  request: {
    query: z.strictObject({
        q: z.string().max(1000),
        scope: scopeQ.optional(),
        k: z.coerce.number().int().min(1).max(100).optional(),
        mode: z.enum(SEARCH_MODES).optional().openapi({ description: 'lexical, vector (needs memory.embedder) or hybrid (Reciprocal Rank Fusion of both); default hybrid when vectors are configured, else lexical' }),
        asOf,
        tenant,
      }),
    },
  responses: { 200: jsonBody(z.strictObject({ hits: z.array(z.strictObject({ fact, score: z.number() })) }), 'hits') },
});

export const getMemoryFact = route({
  method: 'get',
  path: '/v1/memory/facts',
  operationId: 'getMemoryFact',
  summary: 'The current version of a fact, or the one true at `asOf`',
  tags: ['memory'],
  'x-spine-permission': 'read',
  errors: [...READ_ERRORS, 'NOT_FOUND'],
  request: { query: z.strictObject({ scope: scopeQ, key: z.string().min(1).max(256), asOf, tenant }) },
  responses: { 200: jsonBody(z.strictObject({ fact }), 'the fact') },
});

export const memoryHistory = route({
  method: 'get',
  path: '/v1/memory/history',
  operationId: 'memoryHistory',
  summary: 'Every version of a fact, oldest first (tombstones included)',
  tags: ['memory'],
  'x-spine-permission': 'read',
  errors: READ_ERRORS,
  request: { query: z.strictObject({ scope: scopeQ, key: z.string().min(1).max(256), tenant }) },
  responses: { 200: jsonBody(z.strictObject({ versions: z.array(fact) }), 'the versions') },
});

export const putMemoryFact = route({
  method: 'put',
  path: '/v1/memory/facts',
  operationId: 'putMemoryFact',
  summary: 'Write a version with trust owner (compare-and-set with expectedVersion)',
  tags: ['memory'],
  'x-spine-permission': 'operate',
  errors: [...BODY, 'INVALID_REQUEST', 'INVALID_INPUT', 'INVALID_SCOPE', 'VALUE_TOO_LARGE', 'MEMORY_CONFLICT', ...AUTH, ...SYSTEM],
  request: { query: z.strictObject({ tenant }), body: { required: true, content: { 'application/json': { schema: putBody } } } },
  responses: { 200: jsonBody(z.strictObject({ written: z.boolean(), fact }), 'written, or unchanged (the value was already that)') },
});

export const forgetMemory = route({
  method: 'post',
  path: '/v1/memory/forget',
  operationId: 'forgetMemory',
  summary: 'Tombstone what a run, agent or source wrote, and what was derived from it',
  tags: ['memory'],
  'x-spine-permission': 'operate',
  errors: [...BODY, 'INVALID_REQUEST', 'INVALID_INPUT', ...AUTH, ...SYSTEM],
  request: { query: z.strictObject({ tenant }), body: { required: true, content: { 'application/json': { schema: forgetBody } } } },
  responses: { 200: jsonBody(z.strictObject({ dryRun: z.boolean(), facts: z.array(fact) }), 'what was (or would be) forgotten') },
});

export const listMemoryConflicts = route({
  method: 'get',
  path: '/v1/memory/conflicts',
  operationId: 'listMemoryConflicts',
  summary: 'The merge queue',
  tags: ['memory'],
  'x-spine-permission': 'read',
  errors: ['INVALID_REQUEST', ...AUTH, ...SYSTEM],
  request: { query: z.strictObject({ state: z.enum(CONFLICT_STATES).optional(), limit: z.coerce.number().int().min(1).max(1000).optional(), tenant }) },
  responses: { 200: jsonBody(z.strictObject({ conflicts: z.array(conflict) }), 'conflicts, oldest first') },
});

export type MemoryWireChecks = [Check<Same<z.infer<typeof fact>, FactVersion>>, Check<Same<z.infer<typeof conflict>, MemoryConflict>>];

export const memoryRoutes: GatewayModule = (api) => {
  const { app, store, clock, intake } = api;
  const bind = api.bind.bind(api);
  const readJson = (c: Parameters<typeof api.readJson>[0]) => api.readJson(c);
  const who = (t: string | undefined) => ({ tenant: t ?? 'default' });

  app.openapi(bind(searchMemory), async (c) => {
    const q = c.req.valid('query');
    const hits = await searchFacts(
      store,
      embedderFor(intake.registry),
      who(q.tenant),
      { query: q.q, ...(q.k ? { k: q.k } : {}), ...(q.scope ? { scope: q.scope } : {}), ...(q.asOf === undefined ? {} : { asOf: q.asOf }), ...(q.mode ? { mode: q.mode } : {}) },
      clock.now(),
    );
    return c.json({ hits }, 200);
  });

  app.openapi(bind(getMemoryFact), async (c) => {
    const q = c.req.valid('query');
    const found = await getFact(store, who(q.tenant), q.scope, q.key, q.asOf, clock.now());
    if (!found) throw api.notFound('fact', `${q.scope} ${q.key}`);
    return c.json({ fact: found }, 200);
  });

  app.openapi(bind(memoryHistory), async (c) => {
    const q = c.req.valid('query');
    return c.json({ versions: await factHistory(store, who(q.tenant), q.scope, q.key) }, 200);
  });

  app.openapi(bind(putMemoryFact), async (c) => {
    const q = c.req.valid('query');
    const body = check(putBody, await readJson(c), 'body');
    const outcome = await putFact(store, intake.registry.memory, { ...who(q.tenant), actor: `token:${c.get('principal').name}` }, body, clock.now());
    if (outcome.kind === 'conflict') {
      const k = outcome.conflict;
      throw new SpineError('MEMORY_CONFLICT', `${k.scope} ${k.key}: expected version ${k.expectedVersion}, found ${k.currentVersion} (${k.strategy}: ${k.state})`, {
        details: { conflict: k.id, state: k.state, current: outcome.current ? { version: outcome.current.version, value: outcome.current.value } : null },
      });
    }
    if (outcome.kind === 'replayed') throw new Error('an operator write has no effect key to replay');
    return c.json({ written: outcome.kind === 'written', fact: outcome.fact }, 200);
  });

  app.openapi(bind(forgetMemory), async (c) => {
    const q = c.req.valid('query');
    const body = check(forgetBody, await readJson(c), 'body');
    const dryRun = body.dryRun === true;
    const facts = await forgetFacts(
      store,
      { ...who(q.tenant), actor: `token:${c.get('principal').name}` },
      { ...(body.run ? { run: body.run } : {}), ...(body.agent ? { agent: body.agent } : {}), ...(body.source ? { source: body.source } : {}), dryRun },
      clock.now(),
    );
    return c.json({ dryRun, facts }, 200);
  });

  app.openapi(bind(listMemoryConflicts), async (c) => {
    const q = c.req.valid('query');
    return c.json({ conflicts: await listConflicts(store, who(q.tenant), q.state, q.limit ?? 100) }, 200);
  });
};
