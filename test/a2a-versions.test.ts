// A2A protocol versions (docs/a2a.md, "Versions"), both ways, over loopback:
// outbound, Spine's a2a kind speaks to a remote agent that knows only A2A 0.3 (a
// hand-rolled 0.3 server: a card with a card-level protocolVersion, `message/send`,
// 0.3 JSON shapes) through the SDK's compat layer; a remote agent of a version Spine
// does not speak fails at once, not retryable, naming the version. Inbound, a 0.3
// client without an A2A-Version header gets the 0.3 card and is served `message/send`;
// a 1.0 request without the header is served as 1.0; an unknown version is refused,
// naming the versions Spine speaks.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { A2aAgent } from '../src/agents/a2a/a2a-agent.ts';
import { finished, harness, registry, submit } from './helpers.ts';
import { startProject } from './fixtures/http-gateway.ts';

interface LegacyServer {
  url: string;
  calls: Array<{ method: string; version: string | undefined }>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => resolve(body));
  });
}

/** A remote agent that speaks A2A `protocolVersion` only, the way a 0.3 SDK does. */
async function startLegacyAgent(t: TestContext, protocolVersion: string): Promise<LegacyServer> {
  const calls: LegacyServer['calls'] = [];
  const server = createServer((req, res) => void answer(req, res));
  const answer = async (req: IncomingMessage, res: ServerResponse) => {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    if (req.method === 'GET' && req.url === '/.well-known/agent-card.json') {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          name: 'old-timer',
          description: 'an agent on A2A 0.3',
          version: '1.0.0',
          url: base,
          preferredTransport: 'JSONRPC',
          protocolVersion,
          capabilities: { streaming: false },
          defaultInputModes: ['text/plain'],
          defaultOutputModes: ['text/plain'],
          skills: [{ id: 'echo', name: 'echo', description: 'echoes', tags: [] }],
        }),
      );
      return;
    }
    const rpc = JSON.parse(await readBody(req)) as { id: number; method: string; params: { message: { parts: Array<{ kind: string; text?: string }>; contextId?: string } } };
    calls.push({ method: rpc.method, version: req.headers['a2a-version'] as string | undefined });
    res.setHeader('content-type', 'application/json');
    if (rpc.method !== 'message/send') {
      res.end(JSON.stringify({ jsonrpc: '2.0', id: rpc.id, error: { code: -32601, message: `Method not found: ${rpc.method}` } }));
      return;
    }
    const text = rpc.params.message.parts.find((p) => p.kind === 'text')?.text;
    res.end(
      JSON.stringify({
        jsonrpc: '2.0',
        id: rpc.id,
        result: {
          kind: 'task',
          id: 'task-1',
          contextId: rpc.params.message.contextId ?? 'ctx-1',
          status: { state: 'completed', timestamp: new Date().toISOString() },
          artifacts: [{ artifactId: 'a1', parts: [{ kind: 'text', text: `0.3 got: ${text}` }] }],
        },
      }),
    );
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

describe('A2A versions: outbound', () => {
  it('a remote agent on A2A 0.3 is spoken to in 0.3 (message/send) and its task becomes the output', async (t) => {
    const legacy = await startLegacyAgent(t, '0.3.0');
    const reg = registry({ old: { agent: new A2aAgent({ name: 'old', url: legacy.url, pollMs: 20 }) } });
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'old', 'hello from 1.0');
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.output, '0.3 got: hello from 1.0');
    assert.deepEqual(legacy.calls.map((c) => c.method), ['message/send']);
  });

  it('a remote agent of a version Spine does not speak fails once, not retryable, naming the version', async (t) => {
    const ancient = await startLegacyAgent(t, '0.2.5');
    const reg = registry({ ancient: { agent: new A2aAgent({ name: 'ancient', url: ancient.url, pollMs: 20 }), retry: { maxAttempts: 3, initialMs: 1, maxMs: 1, factor: 1, jitter: 'none' } } });
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'ancient', 'hello');
    const done = await finished(store, run.id);
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.retryable, false);
    assert.match(done.error?.message ?? '', /speaks A2A 0\.2\.5; Spine speaks A2A 1\.0 and 0\.3/);
    const [task] = await store.tasks.list({ runId: run.id, limit: 10 });
    assert.equal(task!.attempt, 1, 'no attempt was burnt on retries');
    assert.deepEqual(ancient.calls, [], 'no message was sent');
  });
});

describe('A2A versions: inbound', () => {
  it('a 0.3 client without A2A-Version gets the 0.3 card and message/send; 1.0 without the header is served; an unknown version is refused', async (t) => {
    const p = await startProject(t);
    const auth = { authorization: `Bearer ${p.tokens.operator}` };
    const cardUrl = `${p.url}/v1/a2a/echo/.well-known/agent-card.json`;
    const legacyCard = (await (await fetch(cardUrl, { headers: auth })).json()) as Record<string, unknown>;
    assert.equal(legacyCard.protocolVersion, '0.3.0');
    assert.equal(legacyCard.url, `${p.url}/v1/a2a/echo`);
    assert.equal(legacyCard.preferredTransport, 'JSONRPC');
    const v1Card = (await (await fetch(cardUrl, { headers: { ...auth, 'a2a-version': '1.0' } })).json()) as Record<string, unknown>;
    assert.equal(v1Card.protocolVersion, undefined);

    const rpc = async (body: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(`${p.url}/v1/a2a/echo`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      assert.equal(res.status, 200);
      return (await res.json()) as { result?: Record<string, unknown>; error?: { code: number; message: string } };
    };
    // A 0.3 client, as the 0.3 SDKs send it: no A2A-Version header.
    const old = await rpc({ jsonrpc: '2.0', id: 1, method: 'message/send', params: { message: { kind: 'message', messageId: 'm1', role: 'user', parts: [{ kind: 'text', text: 'from 0.3' }] }, configuration: { blocking: true } } });
    assert.equal(old.error, undefined, JSON.stringify(old.error));
    assert.equal(old.result?.kind, 'task');
    assert.equal((old.result?.status as { state: string }).state, 'completed');
    const parts = (old.result?.artifacts as Array<{ parts: Array<{ kind: string; data?: unknown }> }>)[0]!.parts;
    assert.equal(parts[0]?.kind, 'data');
    assert.deepEqual(parts[0]?.data, { echo: 'from 0.3', data: null, channel: 'a2a' });

    // A 1.0 request without the header: its method names say 1.0.
    const v1 = await rpc({ jsonrpc: '2.0', id: 2, method: 'SendMessage', params: { message: { messageId: 'm2', role: 'ROLE_USER', parts: [{ text: 'from 1.0' }] }, configuration: { returnImmediately: false } } });
    assert.equal(v1.error, undefined, JSON.stringify(v1.error));
    assert.equal((v1.result as { task: { status: { state: string } } }).task.status.state, 'TASK_STATE_COMPLETED');

    // A version Spine does not speak.
    const future = await rpc({ jsonrpc: '2.0', id: 3, method: 'SendMessage', params: { message: { messageId: 'm3', role: 'ROLE_USER', parts: [{ text: 'x' }] } } }, { 'a2a-version': '2.0' });
    assert.match(future.error?.message ?? '', /A2A version '2\.0'.*Spine speaks A2A 1\.0 and 0\.3/);
    assert.equal((await p.store.runs.list({ limit: 10 })).length, 2, 'the refused request started no run');
  });
});
