import type { GatewayModule } from './api.ts';
import { mountBatch } from './routes-batch.ts';
import { mountProtectedResource } from './routes-oauth.ts';
import { validationRoutes } from './routes-validation.ts';

/**
 * The API areas beyond the core routes of routes.ts, one routes-<area>.ts each
 * (declarations and handlers together), mounted in this order.
 */
export const MODULES: readonly GatewayModule[] = [mountBatch, validationRoutes, mountProtectedResource];
