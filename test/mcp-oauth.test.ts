// MCP's OAuth discovery against the real gateway: a 401 from /v1/mcp names the
// protected resource metadata (RFC 9728) in WWW-Authenticate, the metadata is served at
// the well-known URLs the MCP SDK looks at, and a client that passes a bearer token in
// the Authorization header (as docs/mcp.md says) connects and lists the tools.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { discoverOAuthProtectedResourceMetadata, extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startTestGateway } from './fixtures/gateway-setup.ts';

describe('MCP OAuth discovery (protected resource metadata)', () => {
  it('a 401 points at the metadata, which the SDK finds both ways, and a bearer token connects', async (t) => {
    const g = await startTestGateway(t);
    const endpoint = new URL(g.url + '/v1/mcp');

    const res = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
    assert.equal(res.status, 401);
    await res.body?.cancel();
    const { resourceMetadataUrl } = extractWWWAuthenticateParams(res);
    assert.equal(resourceMetadataUrl?.href, `${g.url}/.well-known/oauth-protected-resource/v1/mcp`);
    assert.match(res.headers.get('www-authenticate')!, /^Bearer realm="spine", resource_metadata="/);

    // Through the header's URL, and by the well-known fallback a client without it uses.
    for (const opts of [{ resourceMetadataUrl }, {}]) {
      const meta = await discoverOAuthProtectedResourceMetadata(endpoint, opts);
      assert.equal(meta.resource, endpoint.href);
      assert.deepEqual(meta.bearer_methods_supported, ['header']);
      assert.deepEqual(meta.scopes_supported, ['viewer', 'operator', 'admin']);
      assert.equal(meta.authorization_servers, undefined);
    }
    // Any other route's 401 points at the gateway's metadata.
    const other = await g.call('GET', '/v1/runs', { token: null });
    assert.equal(other.status, 401);
    assert.match(other.headers.get('www-authenticate')!, new RegExp(`resource_metadata="${g.url}/.well-known/oauth-protected-resource"`));
    const root = await g.call('GET', '/.well-known/oauth-protected-resource', { token: null });
    assert.equal(root.status, 200);
    assert.equal((root.body as unknown as { resource: string }).resource, `${g.url}/`);

    // docs/mcp.md: the token goes in the Authorization header.
    const client = new Client({ name: 'oauth-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(endpoint, { requestInit: { headers: { Authorization: `Bearer ${g.tokens.viewer}` } } }));
    t.after(() => client.close());
    const { tools } = await client.listTools();
    assert.ok(tools.some((x) => x.name === 'get_run'));
  });
});
