import { z } from '@hono/zod-openapi';
import type { GatewayModule } from './api.ts';
import { jsonBody, route } from './route-kit.ts';

/**
 * OAuth 2.0 Protected Resource Metadata (RFC 9728), which MCP clients read to learn
 * how to authenticate (the MCP authorization spec). Spine has no authorization server
 * of its own: the metadata names no `authorization_servers`, and says that a bearer
 * token goes in the `Authorization` header (create one with `spine tokens create`).
 * A 401 points at it with `WWW-Authenticate: Bearer resource_metadata="…"`.
 */

export const PROTECTED_RESOURCE_PATH = '/.well-known/oauth-protected-resource';
/** The metadata of the MCP endpoint: the well-known prefix, then the resource's path (RFC 9728 §3.1). */
export const MCP_RESOURCE_PATH = '/v1/mcp';

export const SCOPES = ['viewer', 'operator', 'admin'] as const;

const metadata = z
  .object({
    resource: z.string().openapi({ description: 'the protected resource: the gateway origin, or the MCP endpoint' }),
    resource_name: z.string(),
    bearer_methods_supported: z.array(z.literal('header')),
    scopes_supported: z.array(z.enum(SCOPES)),
  })
  .openapi('ProtectedResourceMetadata', { description: 'RFC 9728 protected resource metadata' });

const declare = (path: string, operationId: string, what: string) =>
  route({
    method: 'get',
    path,
    operationId,
    summary: `OAuth protected resource metadata (RFC 9728) of ${what}`,
    description:
      'How to authenticate: a bearer token in the `Authorization` header (`spine tokens create`, docs/gateway.md). Spine runs no authorization server, so `authorization_servers` is absent.',
    tags: ['meta'],
    'x-spine-permission': 'public',
    errors: [],
    responses: { 200: jsonBody(metadata, 'the metadata') },
  });

export const protectedResource = declare(PROTECTED_RESOURCE_PATH, 'protectedResourceMetadata', 'the gateway');
export const mcpProtectedResource = declare(`${PROTECTED_RESOURCE_PATH}${MCP_RESOURCE_PATH}`, 'mcpProtectedResourceMetadata', 'the MCP endpoint');

/** The metadata URL a 401 on `path` points at: the MCP endpoint's own, or the gateway's. */
export function resourceMetadataUrl(requestUrl: string): string {
  const url = new URL(requestUrl);
  return `${url.origin}${PROTECTED_RESOURCE_PATH}${url.pathname === MCP_RESOURCE_PATH ? MCP_RESOURCE_PATH : ''}`;
}

function body(origin: string, resourcePath: string): z.infer<typeof metadata> {
  return {
    resource: `${origin}${resourcePath}`,
    resource_name: 'Spine',
    bearer_methods_supported: ['header'],
    scopes_supported: [...SCOPES],
  };
}

export const mountProtectedResource: GatewayModule = (api) => {
  api.app.openapi(api.bind(protectedResource), (c) => c.json(body(new URL(c.req.url).origin, '/'), 200));
  api.app.openapi(api.bind(mcpProtectedResource), (c) => c.json(body(new URL(c.req.url).origin, MCP_RESOURCE_PATH), 200));
};
