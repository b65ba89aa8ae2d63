import type { GatewayModule } from './api.ts';
import { dashboardRoutes } from './routes-dashboard.ts';
import { observeRoutes } from './routes-observe.ts';
import { mountBatch } from './routes-batch.ts';
import { briefsModule } from './routes-briefs.ts';
import { mountProtectedResource } from './routes-oauth.ts';
import { validationRoutes } from './routes-validation.ts';
import { auditRoutes } from './routes-audit.ts';
import { memoryRoutes } from './routes-memory.ts';
import { meshRoutes } from './routes-mesh.ts';

/**
 * The API areas beyond the core routes of routes.ts, one routes-<area>.ts each
 * (declarations and handlers together), mounted in this order.
 */

export const MODULES: readonly GatewayModule[] = [mountBatch, briefsModule, validationRoutes, memoryRoutes, mountProtectedResource, auditRoutes, observeRoutes, dashboardRoutes, meshRoutes];
