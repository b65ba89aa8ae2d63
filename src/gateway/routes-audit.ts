import { z } from '@hono/zod-openapi';
import { verifyAudit } from '../audit/verify.ts';
import { why } from '../audit/why.ts';
import { NotFoundError } from '../core/errors.ts';
import type { Json } from '../core/types.ts';
import type { GatewayModule } from './api.ts';
import { ApiError } from './errors.ts';
import { AUTH, jsonBody, route, SYSTEM } from './route-kit.ts';
import { verifyReport, whyGraph } from './wire.ts';

/** The audit trail's verification and provenance (docs/audit.md): `GET /v1/audit/verify`, `GET /v1/why/:id`. */

export const verifyAuditRoute = route({
  method: 'get',
  path: '/v1/audit/verify',
  operationId: 'verifyAudit',
  summary: 'Recompute the hash chains and checkpoints; name the first bad event',
  description: 'The same verification as `spine audit verify`: `verdict` is clean, tampered (with the findings) or unverifiable. The outcome is recorded for `spine doctor`.',
  tags: ['events'],
  'x-spine-permission': 'read',
  errors: ['INVALID_REQUEST', ...AUTH, ...SYSTEM],
  request: {
    query: z.strictObject({
      run: z.string().min(1).optional().openapi({ description: "only this run's streams" }),
      since: z.string().min(1).optional().openapi({ description: 'only events at or after this time: ISO 8601 or epoch ms' }),
    }),
  },
  responses: { 200: jsonBody(verifyReport, 'the verification') },
});

export const whyRoute = route({
  method: 'get',
  path: '/v1/why/{id}',
  operationId: 'why',
  summary: 'The causal chain behind a run, task, effect, approval or envelope',
  description: 'effect ← action ← turn ← task ← handoff ← … ← run ← envelope ← binding, each step with its audit events (seq, chain position, verified). An effect is named by its key (`run/task/turn/action`, URL-encoded).',
  tags: ['events'],
  'x-spine-permission': 'read',
  errors: ['INVALID_REQUEST', ...AUTH, 'NOT_FOUND', ...SYSTEM],
  request: { params: z.object({ id: z.string().min(1).openapi({ description: 'a run, task, approval or envelope id, or an effect key' }) }) },
  responses: { 200: jsonBody(whyGraph, 'the causal chain, from the thing back to its first cause') },
});

export const auditRoutes: GatewayModule = (api) => {
  api.app.openapi(api.bind(verifyAuditRoute), async (c) => {
    const q = c.req.valid('query');
    let since: number | undefined;
    if (q.since !== undefined) {
      since = /^\d+$/.test(q.since) ? Number(q.since) : Date.parse(q.since);
      if (!Number.isFinite(since)) throw new ApiError('INVALID_REQUEST', `since: not a time (ISO 8601 or epoch ms): "${q.since}"`, { issues: [{ path: 'since', message: 'not a time' }] as unknown as Json });
    }
    const report = await verifyAudit(api.store.audit, {
      ...(q.run ? { runId: q.run } : {}),
      ...(since !== undefined ? { since } : {}),
      publicKey: api.auditKeys?.()?.publicKey ?? null,
      now: api.clock.now(),
    });
    await api.store.audit.recordVerification({ at: report.at, status: report.verdict, events: report.events, report: { first: report.first as unknown as Json, findings: report.findings.length, unverifiable: report.unverifiable, scope: report.scope } });
    return c.json(report, 200);
  });

  api.app.openapi(api.bind(whyRoute), async (c) => {
    const { id } = c.req.valid('param');
    try {
      return c.json(await why(api.store, id, { publicKey: api.auditKeys?.()?.publicKey ?? null, now: api.clock.now() }), 200);
    } catch (err) {
      if (err instanceof NotFoundError) throw api.notFound('run, task, effect, approval or envelope', id);
      throw err;
    }
  });
};
