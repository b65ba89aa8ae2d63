import { z } from '@hono/zod-openapi';
import { BRIEF_STATES } from '../core/brief.ts';
import type { GatewayModule } from './api.ts';
import { AUTH, SYSTEM, jsonBody, route } from './route-kit.ts';
import { idParam } from './schemas.ts';
import { brief } from './wire.ts';

/** Briefs (docs/synthesis.md): the synthesised results of joins, newest first, and one with its provenance. */

const DEFAULT_LIMIT = 50;
const id = z.string().min(1).max(128);

export const briefsQuery = z.strictObject({
  run: id.optional().openapi({ description: 'only this run' }),
  state: z.enum(BRIEF_STATES).optional().openapi({ description: 'resolving (waiting on a judge or a person) or done' }),
  limit: z.coerce.number().int().min(1).max(500).optional().openapi({ description: `page size (default ${DEFAULT_LIMIT}, at most 500)` }),
  cursor: id.optional().openapi({ description: 'the `next` of the previous page' }),
});

export const listBriefs = route({
  method: 'get',
  path: '/v1/briefs',
  operationId: 'listBriefs',
  summary: 'Briefs, newest first: parts, conflicts and their resolution, failed lanes, digest',
  tags: ['briefs'],
  'x-spine-permission': 'read',
  errors: ['INVALID_REQUEST', ...AUTH, ...SYSTEM],
  request: { query: briefsQuery },
  responses: { 200: jsonBody(z.strictObject({ briefs: z.array(brief), next: z.string().nullable() }), 'briefs') },
});

export const getBrief = route({
  method: 'get',
  path: '/v1/briefs/{id}',
  operationId: 'getBrief',
  summary: 'One brief, each part and candidate with the agent, task, turn and effect it came from',
  tags: ['briefs'],
  'x-spine-permission': 'read',
  errors: [...AUTH, 'NOT_FOUND', ...SYSTEM],
  request: { params: idParam('brief') },
  responses: { 200: jsonBody(z.strictObject({ brief }), 'the brief') },
});

export const briefsModule: GatewayModule = (api) => {
  api.app.openapi(api.bind(listBriefs), async (c) => {
    const q = c.req.valid('query');
    const limit = q.limit ?? DEFAULT_LIMIT;
    const rows = await api.store.briefs.list({ limit: limit + 1, ...(q.run ? { runId: q.run } : {}), ...(q.state ? { state: q.state } : {}), ...(q.cursor ? { before: q.cursor } : {}) });
    const briefs = rows.slice(0, limit);
    return c.json({ briefs, next: rows.length > limit ? briefs.at(-1)!.id : null }, 200);
  });
  api.app.openapi(api.bind(getBrief), async (c) => {
    const { id: briefId } = c.req.valid('param');
    const found = await api.store.briefs.get(briefId);
    if (!found) throw api.notFound('brief', briefId);
    return c.json({ brief: found }, 200);
  });
};
