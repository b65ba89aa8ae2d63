import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import type { AgentContext } from '../src/core/agent.ts';
import type { TurnInput } from '../src/core/types.ts';
import { Worker } from '../src/engine/worker.ts';
import { envelopeBody, startTestGateway } from './fixtures/gateway-setup.ts';
import { FAST_WORKER, finished, registry, until } from './helpers.ts';

test('streamed model tokens reach live WebSocket subscribers in order, and are never stored', async (t) => {
  const reg = registry({
    writer: async (_input: TurnInput, ctx: AgentContext) => {
      for (const text of ['Dur', 'able ', 'by ', 'design.']) ctx.onToken?.({ text, provider: 'openai', model: 'test-model' });
      return { output: 'Durable by design.' };
    },
  });
  const g = await startTestGateway(t, { reg, bindings: [{ id: 'all', agent: 'writer' }] });
  // The wiring `spine up` does: the worker's agent events go to the gateway's live stream.
  const worker = new Worker({
    store: g.store,
    registry: reg,
    options: FAST_WORKER,
    onAgentEvent: (e) => g.gw.gateway.events.publishEphemeral(e.kind, e.runId, e),
  });
  await worker.start();
  const messages: Array<{ type: string; seq?: number; event?: { text?: string; kind?: string; runId?: string; model?: string } }> = [];
  const ws = new WebSocket(g.url.replace(/^http/, 'ws') + '/v1/ws', { headers: { authorization: `Bearer ${g.tokens.admin}` } });
  try {
    ws.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString()) as (typeof messages)[number]));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await until('the stream is live', () => messages.some((m) => m.type === 'ready'));

    const r = await g.call('POST', '/v1/envelopes', { body: envelopeBody({ text: 'write', peer: { kind: 'dm', id: 'u1' } }) });
    assert.equal(r.status, 202, r.text);
    const runId = r.body.run.id;
    assert.equal((await finished(g.store, runId)).state, 'succeeded');
    await until('the run.succeeded event arrived', () => messages.some((m) => m.type === 'event' && m.event?.kind === 'run.succeeded'));

    const tokens = messages.filter((m) => m.type === 'turn.token');
    assert.deepEqual(
      tokens.map((m) => m.event?.text),
      ['Dur', 'able ', 'by ', 'design.'],
    );
    assert.ok(tokens.every((m) => m.seq === undefined && m.event?.runId === runId && m.event.model === 'test-model'), 'live-only: no cursor');
    const audit = await g.store.audit.list({ runId, limit: 1_000 });
    assert.ok(!audit.some((e) => e.kind.includes('token')), 'tokens are not written to the audit log');
  } finally {
    ws.close();
    // Before the fixture closes the store.
    await worker.stop();
  }
});
