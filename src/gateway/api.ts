import type { OpenAPIHono, RouteConfig } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import type { AuditKeys } from '../audit/checkpoint.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import type { Intake } from '../intake/intake.ts';
import type { Store } from '../store/store.ts';
import type { Permission, Principal } from './auth.ts';
import type { ApiError } from './errors.ts';
import type { EventHub } from './events.ts';
import type { LoginCodes } from './session.ts';
import type { MetricsExposition } from '../core/meter.ts';
import type { MeshShim } from '../engine/mesh-shim.ts';

/** What the gateway keeps per request: the authenticated caller. */
export type Env = {
  Variables: { principal: Principal };
};

/** A declared route made ready to bind: its permission's guard and (with a body) the body limit as middleware. */
export type Bound<R extends RouteConfig> = Omit<R, 'request'> & {
  request: Omit<NonNullable<R['request']>, 'body' | 'headers'>;
  hide: boolean;
  middleware: MiddlewareHandler<Env>[];
};

/**
 * What an area of the API gets to mount its routes with (src/gateway/modules.ts
 * lists the areas): declare each route with route-kit.ts, then
 * `api.app.openapi(api.bind(decl), handler)`; the OpenAPI document picks it up.
 */
export interface GatewayApi {
  app: OpenAPIHono<Env>;
  bind<R extends RouteConfig & { 'x-spine-permission': Permission }>(route: R): Bound<R>;
  store: Store;
  intake: Intake;
  clock: Clock;
  log: Logger;
  /** A JSON body, read strictly (a 400 naming the problem otherwise). */
  readJson(c: Context): Promise<unknown>;
  notFound(what: string, id: string): ApiError;
  /** The audit keys from config (checkpoint signatures are checked with the public one); null when none is configured. */
  auditKeys?: (() => AuditKeys | null) | undefined;
  /** The live event hub (its subscriber count, for metrics). */
  events: EventHub;
  /** One-time dashboard login links. */
  logins: LoginCodes;
  /** The caller, from a bearer token or the dashboard's session cookie; throws 401 without one. */
  authenticate(c: Context<Env>): Promise<Principal>;
  /** The process's meter, scraped at /metrics; null when the runtime wired none. */
  metrics: MetricsExposition | null;
  /** The mesh shim of this process's workers (POST /v1/mesh/call); null when no worker runs here. */
  shim: MeshShim | null;
}

export type GatewayModule = (api: GatewayApi) => void;
