import { z } from '@hono/zod-openapi';
import { GATE_MODES, GATE_OUTCOMES } from '../core/states.ts';
import type { GatewayModule } from './api.ts';
import { AUTH, SYSTEM, jsonBody, route } from './route-kit.ts';
import { gateVerdict } from './wire-validation.ts';

/** The validation area (docs/validation.md): gate verdicts as records. */

const id = z.string().min(1).max(128);
export const verdictsQuery = z.strictObject({
  run: id.optional().openapi({ description: 'only this run (404 if it does not exist)' }),
  gate: id.optional().openapi({ description: 'only this gate' }),
  outcome: z.enum(GATE_OUTCOMES).optional(),
  mode: z.enum(GATE_MODES).optional(),
  after: z.coerce.number().int().min(0).optional().openapi({ description: 'verdicts after this seq (default 0)' }),
  limit: z.coerce.number().int().min(1).max(1000).optional().openapi({ description: 'page size (default 100, at most 1000)' }),
});

export const listGateVerdicts = route({
  method: 'get',
  path: '/v1/gates/verdicts',
  operationId: 'listGateVerdicts',
  summary: 'Gate verdicts, oldest first: every crossing a gate watched, with what it said and what the boundary did',
  tags: ['validation'],
  'x-spine-permission': 'read',
  errors: ['INVALID_REQUEST', ...AUTH, 'NOT_FOUND', ...SYSTEM],
  request: { query: verdictsQuery },
  responses: { 200: jsonBody(z.strictObject({ verdicts: z.array(gateVerdict) }), 'verdicts') },
});

export const validationRoutes: GatewayModule = (api) => {
  api.app.openapi(api.bind(listGateVerdicts), async (c) => {
    const q = c.req.valid('query');
    if (q.run && !(await api.store.runs.get(q.run))) throw api.notFound('run', q.run);
    const verdicts = await api.store.verdicts.list({
      ...(q.run ? { runId: q.run } : {}),
      ...(q.gate ? { gate: q.gate } : {}),
      ...(q.outcome ? { outcome: q.outcome } : {}),
      ...(q.mode ? { mode: q.mode } : {}),
      ...(q.after === undefined ? {} : { afterSeq: q.after }),
      limit: q.limit ?? 100,
    });
    return c.json({ verdicts }, 200);
  });
};
