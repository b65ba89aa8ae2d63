import { z } from '@hono/zod-openapi';
import { GATE_MODES, GATE_OUTCOMES } from '../core/states.ts';
import type { GatewayModule } from './api.ts';
import { AUTH, BODY, SYSTEM, jsonBody, route } from './route-kit.ts';
import { check } from './schemas.ts';
import { breaker, gateVerdict, probeResult, stuckFinding } from './wire-validation.ts';
import { resetChange } from '../validation/breakers.ts';

/** The validation area (docs/validation.md): gate verdicts as records. */

const id = z.string().min(1).max(128);
export const verdictsQuery = z.strictObject({
  run: id.optional().openapi({ description: 'only this run (404 if it does not exist)' }),
  gate: id.optional().openapi({ description: 'only this gate' }),
  outcome: z.enum(GATE_OUTCOMES).optional(),
  mode: z.enum(GATE_MODES).optional(),
  after: z.coerce.number().int().min(0).optional().openapi({ description: 'verdicts after this seq (default 0)' }),
  limit: z.coerce.number().int().min(1).max(1000).optional().openapi({ description: 'page size (default 100, at most 1000)' }),
  order: z.enum(['oldest', 'newest']).optional().openapi({ description: 'oldest first (default: page on with `after`) or newest first' }),
});

export const listGateVerdicts = route({
  method: 'get',
  path: '/v1/gates/verdicts',
  operationId: 'listGateVerdicts',
  summary: 'Gate verdicts, oldest first (or `order=newest`): every crossing a gate watched, with what it said and what the boundary did',
  tags: ['validation'],
  'x-spine-permission': 'read',
  errors: ['INVALID_REQUEST', ...AUTH, 'NOT_FOUND', ...SYSTEM],
  request: { query: verdictsQuery },
  responses: { 200: jsonBody(z.strictObject({ verdicts: z.array(gateVerdict) }), 'verdicts') },
});

export const listBreakers = route({
  method: 'get',
  path: '/v1/breakers',
  operationId: 'listBreakers',
  summary: 'Circuit breakers shared by every worker, with their state',
  tags: ['validation'],
  'x-spine-permission': 'read',
  errors: [...AUTH, ...SYSTEM],
  responses: { 200: jsonBody(z.strictObject({ breakers: z.array(breaker) }), 'breakers') },
});

export const getHealth = route({
  method: 'get',
  path: '/v1/health',
  operationId: 'getHealth',
  summary: "The system's health as the workers see it: breakers, the health probes' latest results, and the stuck work the sweep raised (newest first)",
  tags: ['validation'],
  'x-spine-permission': 'read',
  errors: [...AUTH, ...SYSTEM],
  responses: { 200: jsonBody(z.strictObject({ breakers: z.array(breaker), probes: z.array(probeResult), stuck: z.array(stuckFinding) }), 'health') },
});

const resetBody = z.strictObject({ key: z.string().min(1).max(300) });
export const resetBreaker = route({
  method: 'post',
  path: '/v1/breakers/reset',
  operationId: 'resetBreaker',
  summary: 'Closes a breaker by hand (audited as breaker.reset)',
  tags: ['validation'],
  'x-spine-permission': 'operate',
  errors: [...BODY, 'INVALID_REQUEST', ...AUTH, 'NOT_FOUND', ...SYSTEM],
  request: { body: { required: true, content: { 'application/json': { schema: resetBody } } } },
  responses: { 200: jsonBody(z.strictObject({ breaker }), 'closed') },
});

export const validationRoutes: GatewayModule = (api) => {
  api.app.openapi(api.bind(getHealth), async (c) => {
    const [breakers, probes, stuck] = await Promise.all([api.store.breakers.list(), api.store.probes.list(), api.store.stuck.list(100)]);
    return c.json({ breakers, probes, stuck }, 200);
  });

  api.app.openapi(api.bind(listBreakers), async (c) => c.json({ breakers: await api.store.breakers.list() }, 200));

  api.app.openapi(api.bind(resetBreaker), async (c) => {
    const { key } = check(resetBody, await api.readJson(c), 'body');
    const now = api.clock.now();
    const after = await api.store.breakers.update(key, resetChange(now, { actor: `token:${c.get('principal').name}` }), now);
    if (!after) throw api.notFound('breaker', key);
    return c.json({ breaker: after }, 200);
  });

  api.app.openapi(api.bind(listGateVerdicts), async (c) => {
    const q = c.req.valid('query');
    if (q.run && !(await api.store.runs.get(q.run))) throw api.notFound('run', q.run);
    const verdicts = await api.store.verdicts.list({
      ...(q.run ? { runId: q.run } : {}),
      ...(q.gate ? { gate: q.gate } : {}),
      ...(q.outcome ? { outcome: q.outcome } : {}),
      ...(q.mode ? { mode: q.mode } : {}),
      ...(q.after === undefined ? {} : { afterSeq: q.after }),
      ...(q.order === 'newest' ? { newest: true } : {}),
      limit: q.limit ?? 100,
    });
    return c.json({ verdicts }, 200);
  });
};
