// Gateway auth and bad input: every route but the health checks and channel webhooks
// needs a bearer token; a missing, unknown or revoked token is a 401, a token without
// the scope a 403 — with a JSON error body and nothing stored. Oversized bodies,
// invalid JSON and schema violations are 4xx that change nothing. A non-loopback
// bind with no token is refused at start-up; anonymous access needs an explicit flag
// and a loopback host. The `spine tokens` command creates, lists and revokes tokens.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gatewayCommand } from '../src/cli/commands/gateway.ts';
import { tokensCommand } from '../src/cli/commands/tokens.ts';
import { systemClock } from '../src/core/clock.ts';
import { InvalidInputError, type FieldIssue } from '../src/core/errors.ts';
import { Authenticator, hashToken, isAllowed, newTokenSecret, parseScope } from '../src/gateway/auth.ts';
import { DEFAULT_GATEWAY, isLoopbackHost } from '../src/gateway/config.ts';
import type { OpenApiDocument } from '../src/gateway/app.ts';
import { InsecureBindError, startGateway } from '../src/gateway/server.ts';
import { Intake } from '../src/intake/intake.ts';
import { compileBindings } from '../src/routing/bindings.ts';
import { compileSessions } from '../src/routing/sessions.ts';
import { envelopeBody, SCOPES, startTestGateway, stored, type TokenName } from './fixtures/gateway-setup.ts';
import { gate, registry, tempStore, until } from './helpers.ts';
import type { ApiToken, TokenStore } from '../src/store/tokens.ts';

const TOKENS = Object.keys(SCOPES) as TokenName[];

/** Every documented operation, with ids filled in, and who may call it. */
function operations(doc: OpenApiDocument) {
  return Object.entries(doc.paths ?? {}).flatMap(([path, ops]) =>
    Object.entries(ops as Record<string, { 'x-spine-permission': string }>).map(([method, op]) => ({
      method: method.toUpperCase(),
      // Streams are asked for an unknown run, so an allowed request ends (404) instead of streaming.
      path: path.replace(/\{(\w+)\}/g, (_m, name: string) => (name === 'channel' ? 'nope' : `${name}_nope`)) + (path === '/v1/events' || path === '/v1/ws' ? '?run=run_nope' : ''),
      permission: op['x-spine-permission'],
    })),
  );
}

function allowed(token: TokenName, permission: string): boolean {
  const scopes = SCOPES[token];
  return isAllowed({ name: token, tokenId: 'x', scopes }, permission as 'read');
}

describe('auth', () => {
  it('every route but health and webhooks answers 401 without a valid token, with a JSON body, storing nothing', async (t) => {
    const g = await startTestGateway(t);
    const ops = operations(g.gw.gateway.document());
    assert.ok(ops.length >= 17);
    for (const op of ops) {
      const body = op.method === 'POST' ? envelopeBody() : undefined;
      for (const token of [null, { raw: 'spn_not-a-real-token' }, { raw: 'garbage' }]) {
        const r = await g.call(op.method, op.path, { token, ...(body ? { body } : {}) });
        if (op.permission === 'public') {
          // Public: never asks for a bearer token (the dashboard's sign-in answers a bad token or code with its form, 401, no challenge).
          assert.ok(r.status !== 401 || r.headers.get('www-authenticate') === null, `${op.method} ${op.path} is public`);
          continue;
        }
        assert.equal(r.status, 401, `${op.method} ${op.path} with ${JSON.stringify(token)}: ${r.text}`);
        assert.equal(r.body.error.code, 'UNAUTHENTICATED');
        assert.equal(typeof r.body.error.message, 'string');
        assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
      }
    }
    const malformed = await g.call('GET', '/v1/runs', { token: null, headers: { authorization: 'Basic abc' } });
    assert.equal(malformed.status, 401);
    assert.match(malformed.body.error.message, /malformed Authorization header/);
    assert.deepEqual(await stored(g.store), { envelopes: 0, runs: 0 });
  });

  it('each scope reaches exactly its routes; the rest are 403 with the scopes needed', async (t) => {
    const g = await startTestGateway(t);
    for (const op of operations(g.gw.gateway.document()).filter((o) => o.permission !== 'public')) {
      for (const token of TOKENS) {
        // A body that will not be stored even when allowed (unknown agent), so the store stays empty.
        const body = op.method === 'POST' ? { approve: true } : undefined;
        const r = await g.call(op.method, op.path, { token, ...(body ? { body } : {}) });
        if (allowed(token, op.permission)) {
          assert.ok(![401, 403].includes(r.status), `${token} may ${op.method} ${op.path} (got ${r.status} ${r.text})`);
        } else {
          assert.equal(r.status, 403, `${token} may not ${op.method} ${op.path}: ${r.text}`);
          assert.equal(r.body.error.code, 'FORBIDDEN');
          assert.ok(Array.isArray(r.body.error.needed) && r.body.error.needed.length > 0);
          assert.match(r.body.error.message, new RegExp(`token "${token}"`));
        }
      }
    }
    assert.deepEqual(await stored(g.store), { envelopes: 0, runs: 0 });
  });

  it('ingress:<channel> may submit on its channel only, and never address an agent', async (t) => {
    const g = await startTestGateway(t);
    const api = await g.call('POST', '/v1/envelopes', { token: 'ingressApi', body: envelopeBody() });
    assert.equal(api.status, 202, api.text);
    const hooks = await g.call('POST', '/v1/envelopes', { token: 'ingressHooks', body: envelopeBody({ channel: 'hooks' }) });
    assert.equal(hooks.status, 202, hooks.text);
    assert.deepEqual(await stored(g.store), { envelopes: 2, runs: 2 });

    const wrong = await g.call('POST', '/v1/envelopes', { token: 'ingressApi', body: envelopeBody({ channel: 'hooks' }) });
    assert.equal(wrong.status, 403);
    assert.deepEqual(wrong.body.error.needed, ['ingress:hooks', 'operator', 'admin']);
    const defaulted = await g.call('POST', '/v1/envelopes', { token: 'ingressHooks', body: envelopeBody() });
    assert.equal(defaulted.status, 403, 'no channel means channel api');
    const direct = await g.call('POST', '/v1/envelopes', { token: 'ingressApi', body: envelopeBody({ agent: 'echo' }) });
    assert.equal(direct.status, 403);
    assert.match(direct.body.error.message, /address an agent directly/);
    const viewer = await g.call('POST', '/v1/envelopes', { token: 'viewer', body: envelopeBody() });
    assert.equal(viewer.status, 403);
    assert.deepEqual(await stored(g.store), { envelopes: 2, runs: 2 });
    const audit = await g.store.audit.list({ limit: 100 });
    assert.equal(audit.find((e) => e.kind === 'envelope.received')?.actor, 'token:ingressApi', 'the audit names the token');
  });

  it('a revoked token stops working at once; use is recorded', async (t) => {
    const g = await startTestGateway(t);
    assert.equal((await g.call('GET', '/v1/runs', { token: 'viewer' })).status, 200);
    await until('lastUsedAt recorded', async () => (await g.store.tokens.list()).find((x) => x.name === 'viewer')!.lastUsedAt !== null);
    const viewer = (await g.store.tokens.list()).find((x) => x.name === 'viewer')!;
    assert.equal((await g.store.tokens.list()).find((x) => x.name === 'admin')!.lastUsedAt, null, 'an unused token has no lastUsedAt');
    assert.equal(await g.store.tokens.revoke(viewer.id, Date.now()), true);
    const r = await g.call('GET', '/v1/runs', { token: 'viewer' });
    assert.equal(r.status, 401);
    assert.match(r.body.error.message, /invalid or revoked/);
  });

  it('with no token at all, requests are refused with a hint on how to create one', async (t) => {
    const g = await startTestGateway(t, { noTokens: true });
    const r = await g.call('GET', '/v1/runs', { token: null });
    assert.equal(r.status, 401);
    assert.match(r.body.error.message, /spine tokens create/);
  });

  it('anonymous loopback access needs the flag, and only serves loopback Host and Origin', async (t) => {
    const g = await startTestGateway(t, { noTokens: true, settings: { allowAnonymousLoopback: true } });
    const ok = await g.call('POST', '/v1/envelopes', { token: null, body: envelopeBody() });
    assert.equal(ok.status, 202, ok.text);
    assert.equal((await g.store.audit.list({ limit: 10 })).find((e) => e.kind === 'envelope.received')?.actor, 'token:anonymous');
    const sameOrigin = await g.call('GET', '/v1/runs', { token: null, headers: { origin: g.url } });
    assert.equal(sameOrigin.status, 200);
    const crossSite = await g.call('POST', '/v1/envelopes', { token: null, body: envelopeBody(), headers: { origin: 'https://evil.example' } });
    assert.equal(crossSite.status, 401, 'a web page on another origin is not local');
    const otherPort = await g.call('POST', '/v1/envelopes', { token: null, body: envelopeBody(), headers: { origin: 'http://127.0.0.1:1' } });
    assert.equal(otherPort.status, 401, 'a page on another local port is another origin');
    const rebound = await rawGet(g.url, '/v1/runs', { host: 'evil.example:7400' });
    assert.equal(rebound.status, 401, 'a DNS-rebound Host is not local');
    const badToken = await g.call('GET', '/v1/runs', { token: { raw: 'spn_wrong' } });
    assert.equal(badToken.status, 401, 'a wrong token is still wrong');
    assert.deepEqual(await stored(g.store), { envelopes: 1, runs: 1 });
  });
});

/** Tokens in memory, counting reads; a held read (by its number) answers only when the test lets go. */
function countingTokens(live: Map<string, ApiToken>) {
  const reads: string[] = [];
  const holds = new Map<number, { started: () => void; release: Promise<void> }>();
  const tokens: TokenStore = {
    async create() {
      throw new Error('unused');
    },
    async findByHash(hash) {
      reads.push(hash);
      // The read happens now; a held one answers later, as a slow database would.
      const token = live.get(hash) ?? null;
      const h = holds.get(reads.length);
      if (h) {
        h.started();
        await h.release;
      }
      return token;
    },
    async list() {
      return [...live.values()];
    },
    async revoke() {
      return false;
    },
    async touch() {},
    async anyLive() {
      return live.size > 0;
    },
  };
  return { tokens, reads, holdRead: (n: number, started: () => void, release: Promise<void>) => holds.set(n, { started, release }) };
}

describe('Authenticator', () => {
  const secret = newTokenSecret();
  const record: ApiToken = { id: 'tok_1', name: 'ci', scopes: ['viewer'], createdAt: 0, lastUsedAt: Date.now(), revokedAt: null };

  it('requests with the same token arriving together share reads of the store: the first reads, the rest one read after them', async () => {
    const { tokens, reads } = countingTokens(new Map([[hashToken(secret), record]]));
    const auth = new Authenticator(tokens, () => Date.now());
    const principals = await Promise.all(Array.from({ length: 20 }, () => auth.resolve(secret)));
    assert.equal(reads.length, 2);
    assert.ok(principals.every((p) => p?.name === 'ci' && p.tokenId === 'tok_1'));
    // A later request reads again.
    await auth.resolve(secret);
    assert.equal(reads.length, 3);
  });

  it('a request never shares a read that started before it arrived: a revoke in between refuses it', async () => {
    const live = new Map([[hashToken(secret), record]]);
    const { tokens, reads, holdRead } = countingTokens(live);
    const auth = new Authenticator(tokens, () => Date.now());
    // The first request's own read is under way (held) when the token is revoked.
    const started = gate();
    const release = gate();
    holdRead(1, () => started.open(), release.promise);
    const first = auth.resolve(secret);
    await started.promise;
    live.delete(hashToken(secret));
    const second = auth.resolve(secret);
    release.open();
    assert.equal((await first)?.name, 'ci');
    assert.equal(await second, null, 'the revoke committed before the second request arrived');
    assert.equal(reads.length, 2);

    // Again with the shared read under way: a request arriving now reads afresh.
    live.set(hashToken(secret), record);
    const sharedStarted = gate();
    const sharedRelease = gate();
    holdRead(4, () => sharedStarted.open(), sharedRelease.promise);
    const leader = auth.resolve(secret);
    const follower = auth.resolve(secret);
    assert.equal((await leader)?.name, 'ci');
    await sharedStarted.promise;
    live.delete(hashToken(secret));
    const late = auth.resolve(secret);
    sharedRelease.open();
    assert.equal((await follower)?.name, 'ci');
    assert.equal(await late, null, 'the revoke committed before the late request arrived');
    assert.equal(reads.length, 5);
  });
});

describe('bad input changes nothing', () => {
  it('oversized (declared or chunked), invalid JSON, schema violations, bad keys: the right 4xx with a JSON body', async (t) => {
    const g = await startTestGateway(t, { settings: { bodyLimitBytes: 256 } });
    const big = envelopeBody({ text: 'x'.repeat(400) });
    const declared = await g.call('POST', '/v1/envelopes', { body: big });
    assert.equal(declared.status, 413);
    assert.equal(declared.body.error.code, 'BODY_TOO_LARGE');
    assert.equal(declared.body.error.limit, 256);

    // Chunked: no Content-Length, so the limit is enforced while reading.
    const chunks = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 10; i++) c.enqueue(new TextEncoder().encode('x'.repeat(100)));
        c.close();
      },
    });
    const chunked = await fetch(`${g.url}/v1/envelopes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${g.tokens.admin}`, 'content-type': 'application/json' },
      body: chunks,
      duplex: 'half',
    });
    assert.equal(chunked.status, 413);
    assert.equal(((await chunked.json()) as { error: { code: string } }).error.code, 'BODY_TOO_LARGE');

    const invalid = await g.call('POST', '/v1/envelopes', { body: '{"text": "hi",' });
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.error.code, 'INVALID_JSON');
    const empty = await g.call('POST', '/v1/envelopes', { body: '' , headers: { 'content-type': 'application/json' } });
    assert.equal(empty.status, 400);
    assert.equal(empty.body.error.code, 'INVALID_JSON');

    const schema = await g.call('POST', '/v1/envelopes', { body: { text: 5, peer: { kind: 'room', id: '' }, colour: 'red' } });
    assert.equal(schema.status, 400);
    assert.equal(schema.body.error.code, 'INVALID_REQUEST');
    assert.deepEqual(schema.body.error.issues!.map((i: { path: string }) => i.path).sort(), ['colour', 'peer.id', 'peer.kind', 'text']);
    const array = await g.call('POST', '/v1/envelopes', { body: [1, 2] });
    assert.equal(array.status, 400);

    const key = await g.call('POST', '/v1/envelopes', { body: envelopeBody(), headers: { 'Idempotency-Key': 'x'.repeat(300) } });
    assert.equal(key.status, 400);
    assert.equal(key.body.error.code, 'INVALID_IDEMPOTENCY_KEY');

    const webhook = await g.call('POST', '/v1/channels/unknown/acct', { token: null, body: {} });
    assert.equal(webhook.status, 404);
    assert.equal(webhook.body.error.code, 'UNKNOWN_CHANNEL');
    const run = await g.call('GET', '/v1/runs/run_doesnotexist');
    assert.equal(run.status, 404);
    assert.equal(run.body.error.code, 'NOT_FOUND');
    const cursor = await g.call('GET', '/v1/events?after=-3');
    assert.equal(cursor.status, 400);
    const future = await g.call('GET', '/v1/events?after=99');
    assert.equal(future.status, 400);
    assert.equal(future.body.error.code, 'INVALID_CURSOR');

    assert.deepEqual(await stored(g.store), { envelopes: 0, runs: 0 });
    assert.equal((await g.store.audit.list({ limit: 10 })).length, 0, 'not even an audit event');
  });
});

describe('start-up', () => {
  it('refuses a non-loopback host while no live token exists', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const issues: FieldIssue[] = [];
    const reg = registry({ echo: () => ({ output: 1 }) });
    const intake = new Intake(store, reg, { bindings: compileBindings([], ['echo'], issues), sessions: compileSessions(undefined, issues) }, systemClock);
    const settings = { ...DEFAULT_GATEWAY, port: 0 };
    await assert.rejects(startGateway({ store, intake, settings, host: '0.0.0.0' }), (err: unknown) => {
      assert.ok(err instanceof InsecureBindError);
      assert.equal(err.code, 'INVALID_INPUT', 'exit code 2');
      assert.match(err.message, /refusing to listen on 0\.0\.0\.0.*spine tokens create/s);
      return true;
    });
    const local = await startGateway({ store, intake, settings, host: '127.0.0.1' });
    await local.close(); // loopback without tokens starts (and refuses every /v1 request)
    await assert.rejects(startGateway({ store, intake, settings, host: '0.0.0.0', allowAnonymousLoopback: true }), /only allowed on a loopback host/);

    // A revoked token does not count; a live one does.
    const tok = await store.tokens.create({ id: 'tok_1', name: 'a', hash: hashToken('spn_a'), scopes: ['admin'] }, Date.now());
    await store.tokens.revoke(tok.id, Date.now());
    await assert.rejects(startGateway({ store, intake, settings, host: '0.0.0.0' }), InsecureBindError);
    await store.tokens.create({ id: 'tok_2', name: 'b', hash: hashToken('spn_b'), scopes: ['admin'] }, Date.now());
    const g = await startGateway({ store, intake, settings, host: '0.0.0.0' });
    assert.match(g.url, /^http:\/\/0\.0\.0\.0:\d+$/);
    await g.close();
  });

  it('`spine gateway --host 0.0.0.0` with no token fails with a usage error (exit 2)', async (t) => {
    const { dir, url, cleanup } = await tempStore();
    t.after(cleanup);
    const config = join(dir, 'spine.config.json5');
    writeFileSync(join(dir, 'echo.js'), '');
    writeFileSync(config, `{ agents: { echo: { kind: 'command', command: ['node', 'echo.js'] } } }`);
    await assert.rejects(gatewayCommand(['--host', '0.0.0.0', '--port', '0', '--config', config, '--db', url]), (err: unknown) => {
      assert.ok(err instanceof InvalidInputError);
      assert.equal(err.code, 'INVALID_INPUT');
      return true;
    });
  });

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) assert.ok(isLoopbackHost(h), h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.com', '128.0.0.1']) assert.ok(!isLoopbackHost(h), h);
  });
});

describe('spine tokens', () => {
  it('creates (printing the token once), lists without secrets, and revokes', async (t) => {
    const { store, url, cleanup } = await tempStore();
    t.after(cleanup);
    const created = await tokensCommand(['create', '--name', 'ci', '--scope', 'ingress:api', '--scope', 'viewer', '--db', url, '--json']);
    const { token, secret } = JSON.parse(created.stdout!) as { token: { id: string; scopes: string[] }; secret: string };
    assert.match(secret, /^spn_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(token.scopes, ['ingress:api', 'viewer']);
    const stored = await store.tokens.findByHash(hashToken(secret));
    assert.equal(stored?.id, token.id, 'stored by its hash');

    const human = await tokensCommand(['create', '--name', 'ops', '--scope', 'operator', '--db', url]);
    assert.match(human.stdout!, /spn_\S+/);
    assert.match(human.stdout!, /shown only this once/);

    const listed = await tokensCommand(['list', '--db', url]);
    assert.match(listed.stdout!, /ci\s+ingress:api,viewer/);
    assert.doesNotMatch(listed.stdout!, /spn_/, 'the list never shows a token');

    await assert.rejects(tokensCommand(['create', '--name', 'ci', '--scope', 'admin', '--db', url]), /exists already/);
    await assert.rejects(tokensCommand(['create', '--name', 'x', '--scope', 'root', '--db', url]), /unknown scope "root"/);
    await assert.rejects(tokensCommand(['create', '--name', 'x', '--db', url]), /--scope/);
    await assert.rejects(tokensCommand(['create', '--scope', 'admin', '--db', url]), /--name/);

    const revoked = await tokensCommand(['revoke', 'ci', '--db', url]);
    assert.match(revoked.stdout!, /revoked token/);
    assert.equal(await store.tokens.findByHash(hashToken(secret)), null);
    await assert.rejects(tokensCommand(['revoke', 'ci', '--db', url]), (err: unknown) => (err as { code: string }).code === 'NOT_FOUND');
    const all = await tokensCommand(['list', '--all', '--db', url, '--json']);
    assert.equal((JSON.parse(all.stdout!) as { tokens: unknown[] }).tokens.length, 2);
  });

  it('validates scopes', () => {
    for (const s of ['admin', 'operator', 'viewer', 'ingress:api', 'ingress:slack']) assert.equal(parseScope(s), s);
    for (const s of ['root', 'ingress:', 'ingress:Bad Channel', 'Admin']) assert.throws(() => parseScope(s), InvalidInputError);
  });
});

/** A GET with a Host header of our choosing (fetch does not allow setting Host). */
function rawGet(base: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: 'GET', headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
