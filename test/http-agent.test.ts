// HTTP agents (kind "http"): the turn protocol over signed HTTP POSTs, run by a real
// Worker against a loopback server that checks each signature. Covers a full tool
// round trip, a timeout that aborts the request, 5xx retried within the turn, a 4xx
// that is not retried, network errors, non-JSON answers, and config validation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHttpAgent, type HttpAgentConfig } from '../src/agents/http/config.ts';
import { signSpineRequest, verifySpineSignature } from '../src/agents/http/signature.ts';
import type { Agent } from '../src/core/agent.ts';
import { parseConfig } from '../src/config/load.ts';
import { compileConfig } from '../src/runtime/config.ts';
import { ConfigError, type FieldIssue } from '../src/core/errors.ts';
import type { Json } from '../src/core/types.ts';
import { auditOf, finished, harness, registry, submit, until } from './helpers.ts';
import { sendJson, startAgentServer } from './fixtures/http-agent-server.ts';

const SECRET = 'http-agent-test-secret';

function httpAgent(url: string, extra: Partial<HttpAgentConfig> = {}, name = 'remote'): Agent {
  const issues: FieldIssue[] = [];
  const agent = createHttpAgent({ kind: 'http', url, secret: SECRET, retryDelayMs: 5, ...extra }, { name, dir: '.', path: `agents.${name}`, issues, agentNames: [name] });
  assert.deepEqual(issues, []);
  return agent!;
}

describe('http agents', () => {
  it('signed turns round-trip through a worker: a tool call, then the output', async (t) => {
    const srv = await startAgentServer(t, SECRET);
    srv.on('/planner', (req, res) => {
      if (!req.verified.ok) return sendJson(res, 401, { error: req.verified.reason });
      const { task, results } = req.turn;
      if (task.turn === 1) return sendJson(res, 200, { actions: [{ type: 'tool', tool: 'lookup', input: { q: (task.input as { topic: string }).topic }, id: 'facts' }] });
      sendJson(res, 200, { output: { summary: results[0]!.ok ? results[0]!.value : null, turn: task.turn }, usage: { inputTokens: 3, outputTokens: 4 } });
    });
    process.env.SPINE_TEST_HTTP_SECRET = SECRET;
    t.after(() => delete process.env.SPINE_TEST_HTTP_SECRET);
    const reg = registry(
      { planner: { agent: httpAgent(`${srv.url}/planner`, { secret: { env: 'SPINE_TEST_HTTP_SECRET' }, headers: { 'X-Api-Key': 'k1' } }, 'planner') } },
      { lookup: (input) => `facts about ${(input as { q: string }).q}` },
    );
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'planner', { topic: 'solar' });
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.output, { summary: 'facts about solar', turn: 2 });

    assert.equal(srv.received.length, 2);
    for (const [i, r] of srv.received.entries()) {
      assert.deepEqual(r.verified, { ok: true });
      assert.match(r.headers['x-spine-signature'] as string, /^sha256=[0-9a-f]{64}$/);
      assert.ok(Math.abs(Number(r.headers['x-spine-timestamp']) - Date.now() / 1000) < 30);
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.headers['x-api-key'], 'k1');
      assert.equal(r.headers['x-spine-agent'], 'planner');
      assert.equal(r.headers['x-spine-run'], run.id);
      assert.equal(r.headers['idempotency-key'], `${run.rootTaskId}/${i + 1}`);
      assert.equal(r.turn.protocol, 'spine.turn/1');
      assert.equal(r.turn.task.turn, i + 1);
    }
    // Turn 2 carried the tool's result: the agent stays stateless.
    assert.deepEqual(srv.received[1]!.turn.results[0], { index: 0, type: 'tool', id: 'facts', ok: true, value: 'facts about solar' });

    // The signature binds the body and the timestamp, and needs the secret.
    const r = srv.received[0]!;
    const headers = { timestamp: r.headers['x-spine-timestamp'] as string, signature: r.headers['x-spine-signature'] as string };
    assert.equal(verifySpineSignature(SECRET, headers, r.raw + ' ').ok, false);
    assert.equal(verifySpineSignature('another-secret', headers, r.raw).ok, false);
    assert.equal(verifySpineSignature(SECRET, { ...headers, timestamp: String(Number(headers.timestamp) + 1) }, r.raw).ok, false);
    assert.deepEqual(verifySpineSignature(SECRET, headers, r.raw, { nowSec: Number(headers.timestamp) + 3600 }), { ok: false, reason: 'timestamp outside the accepted window' });
    assert.equal(signSpineRequest('k', 1, 'b'), signSpineRequest('k', 1, Buffer.from('b')));
  });

  it('a turn past its timeout is aborted (the request is cut) and fails with TURN_TIMEOUT', async (t) => {
    const srv = await startAgentServer(t, SECRET);
    srv.on('/slow', () => {
      /* never answers */
    });
    const reg = registry({ slow: { agent: httpAgent(`${srv.url}/slow`), timeoutMs: 300, retry: { maxAttempts: 1 } } });
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'slow', null);
    const done = await finished(store, run.id);
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.code, 'TURN_TIMEOUT');
    await until('the request is cut', () => srv.received[0]?.aborted === true, 30_000);
    assert.equal(srv.received.length, 1);
    assert.equal(srv.received[0]!.aborted, true, 'the request was aborted when the turn timed out');
  });

  it('5xx and 429 are retried within the turn with the same idempotency key; the task never fails', async (t) => {
    const srv = await startAgentServer(t, SECRET);
    srv.on('/flaky', (_req, res, n) => {
      if (n === 1) return sendJson(res, 500, { error: 'boom' });
      if (n === 2) return void res.writeHead(429, { 'retry-after': '0' }).end();
      if (n === 3) return void res.writeHead(502).end('bad gateway');
      sendJson(res, 200, { output: { attempts: n } });
    });
    const reg = registry({ flaky: { agent: httpAgent(`${srv.url}/flaky`, { retries: 3 }) } });
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'flaky', null);
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.output, { attempts: 4 });
    assert.equal(srv.received.length, 4);
    assert.equal(new Set(srv.received.map((r) => r.headers['idempotency-key'])).size, 1, 'one turn, one key');
    assert.equal(new Set(srv.received.map((r) => r.headers['x-spine-delivery'])).size, 4, 'each delivery is distinct');
    assert.equal(new Set(srv.received.map((r) => r.raw)).size, 1, 'the same turn each time');
    const events = await auditOf(store, run.id);
    assert.equal(events.filter((e) => e.kind === 'task.failed').length, 0, 'retries within the turn are invisible to the task');
  });

  it('when the in-turn retries run out, the turn fails retryably and the engine retries it', async (t) => {
    const srv = await startAgentServer(t, SECRET);
    srv.on('/down', (_req, res, n) => (n <= 4 ? void res.writeHead(503).end('overloaded') : sendJson(res, 200, { output: 'up again' })));
    const reg = registry({ down: { agent: httpAgent(`${srv.url}/down`, { retries: 1 }), retry: { maxAttempts: 3, initialMs: 5, jitter: 'none' } } });
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'down', null);
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded');
    assert.equal(srv.received.length, 5, '2 requests per attempt, third attempt succeeds');
    const failed = (await auditOf(store, run.id)).filter((e) => e.kind === 'task.failed');
    assert.equal(failed.length, 2);
    assert.match(JSON.stringify(failed[0]!.data), /answered 503: overloaded/);
  });

  it('a 4xx is the agent refusing the turn: AGENT_FAILED, not retried', async (t) => {
    const srv = await startAgentServer(t, 'a different secret');
    srv.on('/strict', (req, res) => (req.verified.ok ? sendJson(res, 200, { output: 1 }) : sendJson(res, 401, { error: req.verified.reason })));
    const reg = registry({ strict: { agent: httpAgent(`${srv.url}/strict`, { retries: 3 }), retry: { maxAttempts: 3 } } });
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'strict', null);
    const done = await finished(store, run.id);
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.code, 'AGENT_FAILED');
    assert.equal(done.error?.retryable, false);
    assert.match(done.error.message, /answered 401: \{"error":"signature does not match"\}/);
    assert.equal(srv.received.length, 1);
  });

  it('an answer that is not JSON, or breaks the protocol, is AGENT_PROTOCOL and retried per policy', async (t) => {
    const srv = await startAgentServer(t, SECRET);
    srv.on('/text', (_req, res) => void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hello</html>'));
    srv.on('/shape', (_req, res) => sendJson(res, 200, { reply: 'hi' }));
    srv.on('/empty', (_req, res) => void res.writeHead(200).end());
    const retry = { maxAttempts: 2, initialMs: 5, jitter: 'none' as const };
    const reg = registry({
      text: { agent: httpAgent(`${srv.url}/text`), retry },
      shape: { agent: httpAgent(`${srv.url}/shape`), retry },
      empty: { agent: httpAgent(`${srv.url}/empty`), retry },
    });
    const { store } = await harness(t, reg);
    const runs = await Promise.all(['text', 'shape', 'empty'].map((a) => submit(store, reg, a, null)));
    const [text, shape, empty] = await Promise.all(runs.map((r) => finished(store, r.id)));
    for (const r of [text!, shape!, empty!]) {
      assert.equal(r.state, 'failed');
      assert.equal(r.error?.code, 'AGENT_PROTOCOL');
    }
    assert.match(text!.error!.message, /answer is not valid JSON: "<html>hello<\/html>"/);
    assert.match(empty!.error!.message, /empty body/);
    for (const p of ['/text', '/shape', '/empty']) assert.equal(srv.received.filter((r) => r.path === p).length, 2, `${p}: once per attempt`);
  });

  it('network errors are retried; a missing secret env var fails at once, naming the field', async (t) => {
    const srv = await startAgentServer(t, SECRET);
    srv.on('/ok', (_req, res) => sendJson(res, 200, { output: 'ok' }));
    const closedPort = 'http://127.0.0.1:9/turn';
    const reg = registry({
      nowhere: { agent: httpAgent(closedPort, { retries: 1 }), retry: { maxAttempts: 2, initialMs: 5 } },
      nosecret: { agent: httpAgent(`${srv.url}/ok`, { secret: { env: 'SPINE_TEST_UNSET_SECRET' } }, 'nosecret'), retry: { maxAttempts: 3 } },
    });
    const { store } = await harness(t, reg);
    const [a, b] = await Promise.all([submit(store, reg, 'nowhere', null), submit(store, reg, 'nosecret', null)]);
    const nowhere = await finished(store, a.id);
    assert.equal(nowhere.state, 'failed');
    assert.equal(nowhere.error?.code, 'AGENT_FAILED');
    assert.equal(nowhere.error?.retryable, true);
    assert.match(nowhere.error.message, /POST http:\/\/127\.0\.0\.1:9\/turn failed: .*\(after 2 attempts in this turn\)/);
    const nosecret = await finished(store, b.id);
    assert.equal(nosecret.state, 'failed');
    assert.equal(nosecret.error?.retryable, false);
    assert.match(nosecret.error.message, /agents\.nosecret\.secret: environment variable SPINE_TEST_UNSET_SECRET is not set/);
    assert.equal(srv.received.length, 0, 'nothing was sent unsigned');
  });
});

describe('http agent config', () => {
  const issuesOf = (value: Json): FieldIssue[] => {
    try {
      parseConfig('x.json5', value);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.issues;
    }
    assert.fail('expected a ConfigError');
  };

  it('validates url, secret, headers and retries with the path of each bad field', () => {
    const issues = issuesOf({
      agents: {
        a: { kind: 'http', url: 'ftp://example.com/x', secret: { env: 'not a name' }, retries: 11, headers: { 'bad header': 'x' } },
        b: { kind: 'http', secret: '' },
        c: { kind: 'http', url: 'http://127.0.0.1:1/t', colour: 'red' },
      },
    });
    const paths = issues.map((i) => i.path).sort();
    assert.deepEqual(paths, ['agents.a.headers.bad header', 'agents.a.retries', 'agents.a.secret.env', 'agents.a.url', 'agents.b.secret', 'agents.b.url', 'agents.c.colour']);
    assert.match(issues.find((i) => i.path === 'agents.a.url')!.message, /http:\/\/ or https:\/\//);
    assert.match(issues.find((i) => i.path === 'agents.b.url')!.message, /required/);
  });

  it('compiles an http agent into the registry', async () => {
    const raw = parseConfig('/tmp/spine.config.json5', {
      agents: { remote: { kind: 'http', url: 'https://agents.example.com/turn', secret: { env: 'REMOTE_SECRET' }, timeoutMs: 5000, retries: 0 } },
    });
    const compiled = await compileConfig('/tmp/spine.config.json5', raw);
    const spec = compiled.registry.agents.get('remote')!;
    assert.equal(spec.agent.kind, 'http');
    assert.equal(spec.timeoutMs, 5000);
  });
});
