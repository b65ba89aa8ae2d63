// A2A both ways, with the official SDK on loopback:
// (a) a remote A2A agent (a minimal server built with @a2a-js/sdk) as an agent kind,
//     run by a real Worker: card fetch, streaming and blocking sends, appended
//     artifacts, failures, plain-message answers, and a timeout that cancels the task;
// (b) Spine's agents as A2A agents on the gateway, driven by the SDK's client: Agent
//     Cards, blocking and streaming sends, scopes, cancel; and the round trip of
//     Spine's a2a kind talking to Spine's own A2A server.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SendMessageRequest, TaskState, type Task } from '@a2a-js/sdk';
import { ClientFactory, DefaultAgentCardResolver, JsonRpcTransportFactory, type Client } from '@a2a-js/sdk/client';
import { A2aAgent } from '../src/agents/a2a/a2a-agent.ts';
import { createA2aAgent } from '../src/agents/a2a/config.ts';
import { parseConfig } from '../src/config/load.ts';
import { ConfigError } from '../src/core/errors.ts';
import type { Json } from '../src/core/types.ts';
import { auditOf, finished, harness, registry, submit, until } from './helpers.ts';
import { startA2aFixture } from './fixtures/a2a-server.ts';
import { startProject, type Project, type TokenName } from './fixtures/http-gateway.ts';

function remote(url: string, token: string, extra: Partial<ConstructorParameters<typeof A2aAgent>[0]> = {}): A2aAgent {
  return new A2aAgent({ name: 'remote', url, headers: { Authorization: () => `Bearer ${token}` }, pollMs: 20, ...extra });
}

function sdkClient(p: Project, agent: string, token: TokenName, opts: { polling?: boolean } = {}): Promise<Client> {
  const fetchImpl = ((input: string | URL | Request, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${p.tokens[token]}`);
    return fetch(input, { ...init, headers });
  }) as typeof fetch;
  const factory = new ClientFactory({
    transports: [new JsonRpcTransportFactory({ fetchImpl })],
    cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
    ...(opts.polling ? { clientConfig: { polling: true } } : {}),
  });
  return factory.createFromUrl(`${p.url}/v1/a2a/${agent}/`);
}

const userMessage = (text: string, data?: Json) =>
  SendMessageRequest.fromJSON({ message: { messageId: `m-${Math.random()}`, role: 'ROLE_USER', parts: [{ text }, ...(data === undefined ? [] : [{ data }])] } });

describe('A2A: a remote agent as an agent kind', () => {
  it('streaming and blocking: the message carries the input, artifacts (appended chunks) become the output', async (t) => {
    const fx = await startA2aFixture(t);
    const reg = registry({
      streamed: { agent: remote(`${fx.url}/stream`, fx.token) },
      blocking: { agent: remote(`${fx.url}/blocking/.well-known/agent-card.json`, fx.token) },
      forcedBlocking: { agent: remote(`${fx.url}/stream/`, fx.token, { streaming: false }) },
      replies: { agent: remote(`${fx.url}/stream`, fx.token) },
    });
    const { store } = await harness(t, reg);
    const input = { text: 'hello there', topic: 'solar' };
    for (const agent of ['streamed', 'blocking', 'forcedBlocking']) {
      const run = await submit(store, reg, agent, input);
      const done = await finished(store, run.id);
      assert.equal(done.state, 'succeeded', `${agent}: ${JSON.stringify(done.error)}`);
      assert.deepEqual(done.output, [{ received: { text: 'hello there', data: input } }, 'done'], agent);
    }
    assert.equal(fx.received.length, 3);
    const first = fx.received[0]!;
    assert.deepEqual(first.data, [input], 'structured input travels as a data part');
    assert.match(first.messageId, /^task_[a-z0-9]+:1:1$/);
    assert.match(first.contextId, /^run_/);

    const reply = await submit(store, reg, 'replies', 'reply');
    assert.equal((await finished(store, reply.id)).output, 'just a message', 'a plain message answer is the output');
  });

  it('a failed remote task fails the turn (retryable); a bad card URL names the URL; a timeout cancels the remote task', async (t) => {
    const fx = await startA2aFixture(t);
    const reg = registry({
      failing: { agent: remote(`${fx.url}/stream`, fx.token), retry: { maxAttempts: 2, initialMs: 5 } },
      lost: { agent: remote(`${fx.url}/nowhere`, fx.token), retry: { maxAttempts: 1 } },
      unauthorised: { agent: remote(`${fx.url}/stream`, 'wrong'), retry: { maxAttempts: 1 } },
      slow: { agent: remote(`${fx.url}/stream`, fx.token), timeoutMs: 400, retry: { maxAttempts: 1 } },
    });
    const { store } = await harness(t, reg);
    const failing = await finished(store, (await submit(store, reg, 'failing', 'fail')).id);
    assert.equal(failing.state, 'failed');
    assert.equal(failing.error?.code, 'AGENT_FAILED');
    assert.match(failing.error.message, /A2A task .* failed: nope, cannot do that/);
    assert.equal(fx.received.filter((r) => r.text === 'fail').length, 2, 'retried per policy');

    const lost = await finished(store, (await submit(store, reg, 'lost', 'x')).id);
    assert.match(lost.error!.message, /cannot get the A2A Agent Card from http:\/\/127\.0\.0\.1:\d+\/nowhere: .*404/);
    const unauthorised = await finished(store, (await submit(store, reg, 'unauthorised', 'x')).id);
    assert.match(unauthorised.error!.message, /401/);

    const slow = await finished(store, (await submit(store, reg, 'slow', 'slow')).id);
    assert.equal(slow.error?.code, 'TURN_TIMEOUT');
    await until('the remote task is cancelled', () => fx.cancelled.length === 1);
  });

  it('config: url is required and checked; headers resolve from the environment', () => {
    try {
      parseConfig('x.json5', { agents: { a: { kind: 'a2a', url: 'mailto:x' }, b: { kind: 'a2a', streaming: 'yes' } } });
      assert.fail('expected a ConfigError');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.issues.map((i) => i.path).sort(), ['agents.a.url', 'agents.b.streaming', 'agents.b.url']);
    }
    const agent = createA2aAgent({ kind: 'a2a', url: 'https://agents.example.com/writer', headers: { Authorization: { env: 'X' } } }, { name: 'w', dir: '.', path: 'agents.w', issues: [], agentNames: ['w'] });
    assert.equal(agent?.kind, 'a2a');
  });
});

describe('A2A: Spine agents as A2A agents on the gateway', () => {
  it('Agent Cards, blocking and streaming sends through the SDK client, scopes', async (t) => {
    const p = await startProject(t);
    const cardRes = await fetch(`${p.url}/v1/a2a/echo/.well-known/agent-card.json`, { headers: { authorization: `Bearer ${p.tokens.viewer}`, 'a2a-version': '1.0' } });
    assert.equal(cardRes.status, 200);
    const card = (await cardRes.json()) as { name: string; description: string; skills: Array<{ id: string }>; supportedInterfaces: Array<{ url: string; protocolBinding: string; protocolVersion: string }>; capabilities: { streaming: boolean } };
    assert.equal(card.name, 'echo');
    assert.equal(card.description, 'Echoes what it is sent');
    assert.deepEqual(card.skills.map((s) => s.id), ['echo']);
    // One endpoint, two protocol versions (docs/a2a.md, "Versions").
    assert.deepEqual(card.supportedInterfaces, [
      { url: `${p.url}/v1/a2a/echo`, protocolBinding: 'JSONRPC', protocolVersion: '1.0' },
      { url: `${p.url}/v1/a2a/echo`, protocolBinding: 'JSONRPC', protocolVersion: '0.3' },
    ]);
    assert.equal(card.capabilities.streaming, true);
    assert.equal((await fetch(`${p.url}/v1/a2a/echo/.well-known/agent-card.json`)).status, 401);
    assert.equal((await fetch(`${p.url}/v1/a2a/nobody/.well-known/agent-card.json`, { headers: { authorization: `Bearer ${p.tokens.viewer}` } })).status, 404);

    const client = await sdkClient(p, 'echo', 'operator');
    const result = await client.sendMessage(userMessage('hi spine', { n: 1 }));
    assert.ok(!('messageId' in result), 'a task, not a message');
    const task = result;
    assert.equal(task.status?.state, TaskState.TASK_STATE_COMPLETED);
    assert.equal(task.artifacts.length, 1);
    const part = task.artifacts[0]!.parts[0]!.content;
    assert.deepEqual(part, { $case: 'data', value: { echo: 'hi spine', data: { n: 1 }, channel: 'a2a' } });
    const runId = task.artifacts[0]!.metadata?.spineRunId as string;
    const run = await p.store.runs.get(runId);
    assert.equal(run?.state, 'succeeded');
    const received = (await p.store.audit.list({ limit: 1000 })).filter((e) => e.kind === 'envelope.received');
    assert.deepEqual(received.map((e) => e.actor), ['a2a:operator']);
    assert.ok((await auditOf(p.store, runId)).some((e) => e.kind === 'run.created'));

    // Streaming: submitted → working → artifact → completed.
    const kinds: string[] = [];
    let last: TaskState | undefined;
    for await (const ev of client.sendMessageStream(userMessage('stream me'))) {
      const payload = ev.payload!;
      kinds.push(payload.$case);
      if (payload.$case === 'statusUpdate') last = payload.value.status?.state;
      if (payload.$case === 'artifactUpdate') assert.deepEqual(payload.value.artifact?.parts[0]?.content, { $case: 'data', value: { echo: 'stream me', data: null, channel: 'a2a' } });
    }
    assert.deepEqual(kinds, ['task', 'statusUpdate', 'artifactUpdate', 'statusUpdate']);
    assert.equal(last, TaskState.TASK_STATE_COMPLETED);

    // GetTask after the fact.
    const again = await client.getTask({ tenant: '', id: task.id });
    assert.equal(again.status?.state, TaskState.TASK_STATE_COMPLETED);

    // A viewer may read the card but not send work.
    const viewer = await sdkClient(p, 'echo', 'viewer');
    await assert.rejects(viewer.sendMessage(userMessage('nope')), /403/);
  });

  it('cancelling the A2A task cancels the run; a run that fails fails the task', async (t) => {
    const p = await startProject(t, {
      config: {
        agents: {
          echo: { kind: 'function', module: new URL('./fixtures/mcp-agents.ts', import.meta.url).pathname, export: 'echo' },
          gated: { kind: 'function', module: new URL('./fixtures/mcp-agents.ts', import.meta.url).pathname, export: 'gated', grants: { tools: ['notes.*'] } },
          broken: { kind: 'command', command: ['false'], retry: { maxAttempts: 1 } },
        },
        tools: { 'notes.save': { module: new URL('./fixtures/mcp-agents.ts', import.meta.url).pathname, export: 'saveNote' } },
        policy: { rules: [{ id: 'notes-need-ok', kind: 'approval', actions: ['tool:notes.*'], tier: 'approve' }] },
      },
    });
    const gated = await sdkClient(p, 'gated', 'operator', { polling: true });
    const started = (await gated.sendMessage(userMessage('hold this'))) as Task;
    assert.notEqual(started.status?.state, TaskState.TASK_STATE_COMPLETED);
    await until('the run waits for approval', async () => (await p.store.approvals.list({ limit: 5 })).length === 1);
    const cancelled = await gated.cancelTask({ tenant: '', id: started.id, metadata: undefined });
    assert.equal(cancelled.status?.state, TaskState.TASK_STATE_CANCELED);
    const [run] = await p.store.runs.list({ limit: 5, agent: 'gated' });
    await until('the run is cancelled', async () => (await p.store.runs.get(run!.id))?.state === 'cancelled');

    const broken = await sdkClient(p, 'broken', 'operator');
    const failed = (await broken.sendMessage(userMessage('go'))) as Task;
    assert.equal(failed.status?.state, TaskState.TASK_STATE_FAILED);
    assert.match(failed.status?.message?.parts[0]?.content?.value as string, /^AGENT_FAILED: /);
  });

  it("round trip: Spine's a2a agent kind calls Spine's own A2A server", async (t) => {
    const server = await startProject(t);
    const reg = registry({ proxy: { agent: remote(`${server.url}/v1/a2a/echo`, server.tokens.operator) } });
    const { store } = await harness(t, reg);
    const run = await submit(store, reg, 'proxy', { text: 'across the wire', priority: 2 });
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.output, { echo: 'across the wire', data: { text: 'across the wire', priority: 2 }, channel: 'a2a' });
    const remoteRuns = await server.store.runs.list({ limit: 5, agent: 'echo' });
    assert.equal(remoteRuns.length, 1, 'one run on the serving side');
  });
});

describe('A2A: credentials stay with the configured origin', () => {
  it('a card naming another origin is refused, its host gets no header; allowedOrigins trusts it', async (t) => {
    const fx = await startA2aFixture(t);
    // Configured as localhost; the card names 127.0.0.1: another origin, the same server.
    const viaName = fx.url.replace('127.0.0.1', 'localhost');
    const reg = registry({
      redirected: { agent: remote(`${viaName}/stream`, fx.token), retry: { maxAttempts: 1 } },
      trusted: { agent: remote(`${viaName}/stream`, fx.token, { allowedOrigins: [fx.url] }), retry: { maxAttempts: 1 } },
    });
    const { store } = await harness(t, reg);
    const refused = await finished(store, (await submit(store, reg, 'redirected', { text: 'hi' })).id);
    assert.equal(refused.state, 'failed');
    assert.match(refused.error?.message ?? '', /points to http:\/\/127\.0\.0\.1:\d+, not to the configured origin http:\/\/localhost:\d+/);
    assert.equal(fx.received.length, 0, 'no message (and no Authorization header) reached the other origin');
    const ok = await finished(store, (await submit(store, reg, 'trusted', { text: 'hi' })).id);
    assert.equal(ok.state, 'succeeded', JSON.stringify(ok.error));
  });
});
