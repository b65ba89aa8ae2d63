import { z } from '@hono/zod-openapi';
import type { GatewayModule } from './api.ts';
import { ApiError } from './errors.ts';
import { AUTH, SYSTEM, jsonBody, route } from './route-kit.ts';

/**
 * The live view's reads (docs/observability.md): Prometheus metrics, and one snapshot
 * of queue, workers, leases, approvals, spend and outbox for the dashboard's health
 * and cost views.
 */

const count = z.number().int();
const nullableMs = z.number().int().nullable();
const observeBody = z
  .strictObject({
    at: z.number().int(),
    health: z.strictObject({
      tasksByState: z.record(z.string(), count),
      runsByState: z.record(z.string(), count),
      stuckLeases: z.strictObject({ count, oldestExpiredAt: nullableMs, taskIds: z.array(z.string()) }),
      oldestReadyAt: nullableMs,
      pendingApprovals: count,
      outbox: z.strictObject({ pending: count, dead: count, oldestDueAt: nullableMs }),
      workersAlive: count,
    }),
    observed: z.strictObject({
      tasks: z.array(z.strictObject({ agent: z.string(), state: z.string(), count })),
      approvals: z.strictObject({ pending: count, oldestRequestedAt: nullableMs }),
      budgets: z.array(z.strictObject({ key: z.string(), spentMicros: count, reservedMicros: count, spentTokens: count, reservedTokens: count, updatedAt: z.number().int() })),
      spend: z.array(z.strictObject({ runId: z.string(), agent: z.string(), reservedMicros: count, settledMicros: count, settledTokens: count })),
      outbox: z.array(z.strictObject({ channel: z.string(), state: z.string(), count })),
    }),
    workers: z.array(z.strictObject({ id: z.string(), pid: z.number().int(), host: z.string(), startedAt: z.number().int(), heartbeatAt: z.number().int(), stoppedAt: nullableMs })),
    subscribers: count,
  })
  .openapi('Observed', { description: 'queue, leases, workers, approvals, spend and outbox, read now' });

export const metrics = route({
  method: 'get',
  path: '/metrics',
  operationId: 'metrics',
  summary: 'Prometheus metrics (text exposition format): queue, tasks, turns, effects, policy, approvals, spend, outbox, schedules, streams',
  tags: ['observability'],
  'x-spine-permission': 'read',
  errors: [...AUTH, 'NOT_FOUND', ...SYSTEM],
  responses: { 200: { description: 'the metrics, `text/plain; version=0.0.4`', content: { 'text/plain': { schema: z.string() } } } },
});

export const observe = route({
  method: 'get',
  path: '/v1/observe',
  operationId: 'observe',
  summary: "The live view's snapshot: queue by agent, workers, expired leases, approvals, spend per ceiling and run, outbox",
  tags: ['observability'],
  'x-spine-permission': 'read',
  errors: [...AUTH, ...SYSTEM],
  responses: { 200: jsonBody(observeBody, 'read now, each figure exact (not one transaction)') },
});

/** Workers that heartbeated within this are listed as alive. */
const ALIVE_MS = 60_000;

export const observeRoutes: GatewayModule = (api) => {
  const { app, store, clock } = api;
  const bind = api.bind.bind(api);
  app.openapi(bind(metrics), async (c) => {
    const m = api.metrics;
    if (!m) throw new ApiError('NOT_FOUND', 'metrics are not enabled in this process');
    return c.body(await m.render(), 200, { 'content-type': m.contentType }) as never;
  });
  app.openapi(bind(observe), async (c) => {
    const at = clock.now();
    const [health, observed, workers] = await Promise.all([store.health(at, at - ALIVE_MS), store.observed.snapshot(at), store.workers.list({ aliveSince: at - ALIVE_MS })]);
    return c.json({ at, health, observed, workers, subscribers: api.events.subscribers }, 200);
  });
};
