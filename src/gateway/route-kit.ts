import { createRoute, type z, type RouteConfig } from '@hono/zod-openapi';
import { ERROR_CATALOGUE, type ErrorCode } from '../core/errors.ts';
import type { Permission } from './auth.ts';
import { errorBody } from './wire.ts';

/**
 * How a route is declared (routes.ts, and each area's routes-*.ts): its request and
 * response schemas, the permission its token needs and the error codes it may
 * answer, each documented under the status the error catalogue gives it.
 */

export type Declaration = Omit<RouteConfig, 'middleware' | 'hide'> & { 'x-spine-permission': Permission; errors: readonly ErrorCode[] };

/** `code: summary; …` for a response description. */
export function describeCodes(codes: readonly ErrorCode[]): string {
  return codes.map((c) => `${c}: ${ERROR_CATALOGUE[c].summary}`).join('; ');
}

/** Headers some error answers carry. */
export function errorHeadersDoc(codes: readonly ErrorCode[]): Record<string, { description: string; schema: { type: 'string' } }> | undefined {
  const h: Record<string, { description: string; schema: { type: 'string' } }> = {};
  if (codes.includes('UNAUTHENTICATED')) h['WWW-Authenticate'] = { description: '`Bearer realm="spine", resource_metadata="<origin>/.well-known/oauth-protected-resource[/v1/mcp]"` (RFC 9728)', schema: { type: 'string' } };
  if (codes.includes('UPGRADE_REQUIRED')) h.Upgrade = { description: '`websocket`', schema: { type: 'string' } };
  if (codes.some((c) => ERROR_CATALOGUE[c].status === 503 && ERROR_CATALOGUE[c].retryable)) h['Retry-After'] = { description: 'seconds to wait before retrying', schema: { type: 'string' } };
  return Object.keys(h).length ? h : undefined;
}

/**
 * The error answers of a route, one per status the catalogue gives its codes, all
 * with the one error body. Typed as adding no keys: handlers throw errors rather than
 * return them, so they add nothing to a handler's typed answers.
 */
export function errorResponses(codes: readonly ErrorCode[]): Record<never, never> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) byStatus.set(ERROR_CATALOGUE[code].status, [...(byStatus.get(ERROR_CATALOGUE[code].status) ?? []), code]);
  return Object.fromEntries(
    [...byStatus].map(([status, group]) => {
      const headers = errorHeadersDoc(group);
      return [status, { description: describeCodes(group), ...(headers ? { headers } : {}), content: { 'application/json': { schema: errorBody } } }];
    }),
  );
}

/** A route: its `errors` become `x-spine-errors` and their responses; a response declared explicitly wins. Public routes need no token. */
export function route<const R extends Declaration>(decl: R): Omit<R, 'errors'> {
  const { errors: declared, ...rest } = decl;
  // Any route may meet a NUL in its path or query (refused at the door for both backends alike).
  const errors: readonly ErrorCode[] = declared.includes('INPUT_LIMIT') ? declared : [...declared, 'INPUT_LIMIT'];
  const config: RouteConfig = {
    ...rest,
    ...(rest['x-spine-permission'] === 'public' ? { security: [] } : {}),
    'x-spine-errors': [...errors],
    responses: { ...errorResponses(errors), ...rest.responses },
  };
  return createRoute(config) as unknown as Omit<R, 'errors'>;
}

export const jsonBody = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { 'application/json': { schema } } });

// ── error code sets ──────────────────────────────────────────────────────────

export const AUTH = ['UNAUTHENTICATED', 'FORBIDDEN'] as const;
/** Anything that reads or writes the store may find it unavailable; any route may hit a bug. */
export const SYSTEM = ['STORE_UNAVAILABLE', 'INTERNAL'] as const;
export const BODY = ['INVALID_JSON', 'INVALID_BODY', 'BODY_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'INPUT_LIMIT'] as const;
