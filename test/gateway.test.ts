// The gateway's REST API against a real server on a loopback port: intake with
// Idempotency-Key (also under 50 concurrent identical requests), unroutable envelopes,
// runs and tasks (filters, cursor pagination, show, cancel, retry), approvals decided
// over HTTP, channel webhooks through an adapter, health and readiness. The OpenAPI
// document and every route's answers against it: test/openapi.test.ts.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import type { FieldIssue } from '../src/core/errors.ts';
import type { TurnInput } from '../src/core/types.ts';
import { createGateway } from '../src/gateway/app.ts';
import { DEFAULT_GATEWAY } from '../src/gateway/config.ts';
import { type ChannelAdapter, type InboundRequest, type InboundResult } from '../src/core/channel.ts';
import { BadChannelRequestError, UnauthorizedRequestError } from '../src/core/errors.ts';
import { Intake } from '../src/intake/intake.ts';
import { compilePolicy, policySchema } from '../src/policy/rules.ts';
import { systemClock } from '../src/core/clock.ts';
import { compileBindings } from '../src/routing/bindings.ts';
import { compileSessions } from '../src/routing/sessions.ts';
import { envelopeBody, startTestGateway, stored } from './fixtures/gateway-setup.ts';
import { finished, gate, registry, tempStore, until } from './helpers.ts';

describe('POST /v1/envelopes', () => {
  it('commits the envelope and its run before answering 202; a retry with the key returns the original', async (t) => {
    const g = await startTestGateway(t);
    const first = await g.call('POST', '/v1/envelopes', { body: envelopeBody(), headers: { 'Idempotency-Key': 'order-1' } });
    assert.equal(first.status, 202, first.text);
    assert.equal(first.body.envelope.state, 'routed');
    assert.equal(first.body.envelope.idempotencyKey, 'api:order-1');
    assert.equal(first.body.run.agent, 'echo');
    assert.equal(first.body.idempotencyKey, 'order-1');
    assert.equal(first.body.duplicate, undefined);
    assert.equal(first.headers.get('location'), `/v1/runs/${first.body.run.id}`);
    // Durable before the 202: the run is in the store the moment the answer arrives.
    assert.equal((await g.store.runs.get(first.body.run.id))?.id, first.body.run.id);

    const again = await g.call('POST', '/v1/envelopes', { body: envelopeBody(), headers: { 'Idempotency-Key': 'order-1' } });
    assert.equal(again.status, 200);
    assert.equal(again.body.duplicate, true);
    assert.equal(again.body.run.id, first.body.run.id);
    assert.equal(again.body.envelope.id, first.body.envelope.id);
    assert.deepEqual(await stored(g.store), { envelopes: 1, runs: 1 });
  });

  it('50 concurrent identical requests with one key make exactly one run', async (t) => {
    const g = await startTestGateway(t);
    const replies = await Promise.all(
      Array.from({ length: 50 }, () => g.call('POST', '/v1/envelopes', { body: envelopeBody({ text: 'once' }), headers: { 'Idempotency-Key': 'burst' } })),
    );
    const statuses = replies.map((r) => r.status).sort();
    assert.equal(statuses.filter((s) => s === 202).length, 1, `one 202: ${statuses.join(',')}`);
    assert.equal(statuses.filter((s) => s === 200).length, 49);
    assert.equal(new Set(replies.map((r) => r.body.run.id)).size, 1, 'every reply names the same run');
    assert.equal(new Set(replies.map((r) => r.body.envelope.id)).size, 1);
    assert.deepEqual(await stored(g.store), { envelopes: 1, runs: 1 });
  });

  it('generates a key when there is none, and says so', async (t) => {
    const g = await startTestGateway(t);
    const a = await g.call('POST', '/v1/envelopes', { body: envelopeBody() });
    const b = await g.call('POST', '/v1/envelopes', { body: envelopeBody() });
    assert.equal(a.status, 202);
    assert.equal(a.body.idempotencyKeyGenerated, true);
    assert.match(a.body.idempotencyKey, /^idem_/);
    assert.equal(a.headers.get('idempotency-key'), a.body.idempotencyKey);
    assert.notEqual(a.body.run.id, b.body.run.id, 'without a key, two submissions are two runs');
    assert.deepEqual(await stored(g.store), { envelopes: 2, runs: 2 });
  });

  it('refuses a key reused with a different body (409) and keeps the original', async (t) => {
    const g = await startTestGateway(t);
    const a = await g.call('POST', '/v1/envelopes', { body: envelopeBody({ text: 'one' }), headers: { 'Idempotency-Key': 'k' } });
    const b = await g.call('POST', '/v1/envelopes', { body: envelopeBody({ text: 'two' }), headers: { 'Idempotency-Key': 'k' } });
    assert.equal(a.status, 202);
    assert.equal(b.status, 409);
    assert.equal(b.body.error.code, 'IDEMPOTENCY_KEY_REUSED');
    assert.equal(b.body.error.envelope, a.body.envelope.id);
    assert.deepEqual(await stored(g.store), { envelopes: 1, runs: 1 });
  });

  it('stores an unroutable envelope in its error state and answers 422 with the explanation', async (t) => {
    const g = await startTestGateway(t);
    const r = await g.call('POST', '/v1/envelopes', { body: envelopeBody({ channel: 'nowhere' }), headers: { 'Idempotency-Key': 'lost' } });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.body.error.code, 'UNROUTABLE');
    assert.match(r.body.error.message, /no binding matches channel=nowhere/);
    assert.equal(r.body.envelope.state, 'unroutable');
    assert.equal(r.body.run, null);
    const envelope = await g.store.envelopes.get(r.body.envelope.id);
    assert.equal(envelope?.state, 'unroutable');
    assert.deepEqual(await stored(g.store), { envelopes: 1, runs: 0 });
    const again = await g.call('POST', '/v1/envelopes', { body: envelopeBody({ channel: 'nowhere' }), headers: { 'Idempotency-Key': 'lost' } });
    assert.equal(again.status, 422);
    assert.equal(again.body.duplicate, true);
    assert.equal((await g.call('GET', `/v1/envelopes/${r.body.envelope.id}`)).body.envelope.state, 'unroutable');
  });

  it('sends straight to `agent` for an operator; an unknown agent is a 422 and stores nothing', async (t) => {
    const g = await startTestGateway(t, { agents: { other: () => ({ output: 'other' }) } });
    const r = await g.call('POST', '/v1/envelopes', { token: 'operator', body: envelopeBody({ channel: 'nowhere', agent: 'other' }) });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.body.run.agent, 'other');
    const bad = await g.call('POST', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'ghost' }) });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.error.code, 'UNKNOWN_AGENT');
    assert.deepEqual(await stored(g.store), { envelopes: 1, runs: 1 });
  });
});

describe('runs and tasks', () => {
  it('lists newest first with filters and cursor pagination', async (t) => {
    const g = await startTestGateway(t, { agents: { other: () => ({ output: 'x' }) } });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await g.call('POST', '/v1/envelopes', { body: envelopeBody({ text: `m${i}` }) });
      ids.push(r.body.run.id);
    }
    await g.call('POST', '/v1/envelopes', { token: 'operator', body: envelopeBody({ agent: 'other' }) });
    const page1 = await g.call('GET', '/v1/runs?agent=echo&limit=2', { token: 'viewer' });
    assert.equal(page1.status, 200);
    assert.deepEqual(
      page1.body.runs.map((r: { id: string }) => r.id),
      [ids[4], ids[3]],
    );
    const page2 = await g.call('GET', `/v1/runs?agent=echo&limit=2&cursor=${page1.body.next}`, { token: 'viewer' });
    assert.deepEqual(
      page2.body.runs.map((r: { id: string }) => r.id),
      [ids[2], ids[1]],
    );
    const page3 = await g.call('GET', `/v1/runs?agent=echo&limit=2&cursor=${page2.body.next}`, { token: 'viewer' });
    assert.deepEqual(
      page3.body.runs.map((r: { id: string }) => r.id),
      [ids[0]],
    );
    assert.equal(page3.body.next, null, 'the last page has no next cursor');
    assert.equal((await g.call('GET', '/v1/runs?state=succeeded')).body.runs.length, 0);
    assert.equal((await g.call('GET', '/v1/runs?state=running')).body.runs.length, 6);
    const bad = await g.call('GET', '/v1/runs?state=sleeping&limit=0');
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.error.issues!.map((i: { path: string }) => i.path).sort(), ['query.limit', 'query.state']);
  });

  it('shows a run with its tasks, a task with turns and effects; unknown ids are 404', async (t) => {
    const reg = registry(
      {
        echo: (input: TurnInput) => (input.task.turn === 1 ? { actions: [{ type: 'tool', tool: 'note', input: { n: 1 } }] } : { output: 'done' }),
      },
      { note: () => 'noted' },
    );
    const g = await startTestGateway(t, { reg });
    await g.startWorker(reg);
    const sub = await g.call('POST', '/v1/envelopes', { body: envelopeBody() });
    await finished(g.store, sub.body.run.id);
    const shown = await g.call('GET', `/v1/runs/${sub.body.run.id}`, { token: 'viewer' });
    assert.equal(shown.status, 200);
    assert.equal(shown.body.run.state, 'succeeded');
    assert.equal(shown.body.tasks.length, 1);
    assert.equal(shown.body.envelope.id, sub.body.envelope.id);
    const tasks = await g.call('GET', `/v1/tasks?run=${sub.body.run.id}`, { token: 'viewer' });
    assert.equal(tasks.body.tasks.length, 1);
    const task = await g.call('GET', `/v1/tasks/${tasks.body.tasks[0]!.id}`, { token: 'viewer' });
    assert.equal(task.status, 200);
    assert.equal(task.body.turns.length, 2);
    assert.equal(task.body.effects.length, 1);
    assert.equal(task.body.effects[0]!.tool, 'note');

    for (const path of ['/v1/runs/run_nope', '/v1/tasks/task_nope', '/v1/tasks?run=run_nope', '/v1/envelopes/env_nope']) {
      const r = await g.call('GET', path);
      assert.equal(r.status, 404, path);
      assert.equal(r.body.error.code, 'NOT_FOUND');
    }
    const unknownRoute = await g.call('GET', '/v1/nothing-here');
    assert.equal(unknownRoute.status, 404);
    assert.equal(unknownRoute.body.error.code, 'NOT_FOUND');
  });

  it('cancels and retries; a wrong state is a 409, an unknown run a 404', async (t) => {
    let fail = true;
    const reg = registry(
      {
        echo: () => {
          if (fail) throw new Error('boom');
          return { output: 'ok' };
        },
      },
      {},
      { retry: { maxAttempts: 1 } },
    );
    const g = await startTestGateway(t, { reg });
    // Cancel a queued run (no worker yet).
    const a = await g.call('POST', '/v1/envelopes', { body: envelopeBody({ text: 'a', peer: { kind: 'dm', id: 'p-a' } }) });
    const cancelled = await g.call('POST', `/v1/runs/${a.body.run.id}/cancel`, { token: 'operator', body: { reason: 'not needed' } });
    assert.equal(cancelled.status, 200, cancelled.text);
    assert.equal(cancelled.body.run.state, 'cancelled');
    assert.equal(cancelled.body.cancelledTasks, 1);
    const twice = await g.call('POST', `/v1/runs/${a.body.run.id}/cancel`, { token: 'operator' });
    assert.equal(twice.status, 409);
    assert.equal(twice.body.error.code, 'INVALID_STATE');
    assert.equal((await g.call('POST', '/v1/runs/run_nope/cancel', { token: 'operator' })).status, 404);
    assert.equal((await g.call('POST', `/v1/runs/${a.body.run.id}/cancel`, { token: 'operator', body: { why: 1 } })).status, 400);

    // Retry a failed run.
    await g.startWorker(reg);
    const b = await g.call('POST', '/v1/envelopes', { body: envelopeBody({ text: 'b', peer: { kind: 'dm', id: 'p-b' } }) });
    const failed = await finished(g.store, b.body.run.id);
    assert.equal(failed.state, 'failed');
    assert.equal((await g.call('POST', `/v1/runs/${a.body.run.id}/retry`, { token: 'operator' })).status, 409, 'a cancelled run cannot be retried');
    fail = false;
    const retried = await g.call('POST', `/v1/runs/${b.body.run.id}/retry`, { token: 'operator' });
    assert.equal(retried.status, 200, retried.text);
    assert.equal(retried.body.run.state, 'running');
    assert.equal((await finished(g.store, b.body.run.id)).state, 'succeeded');
    assert.equal((await g.call('POST', '/v1/runs/run_nope/retry', { token: 'operator' })).status, 404);
  });
});

describe('audit', () => {
  it('pages through the audit log by seq', async (t) => {
    const g = await startTestGateway(t);
    const a = await g.call('POST', '/v1/envelopes', { body: envelopeBody({ text: 'a' }) });
    await g.call('POST', '/v1/envelopes', { body: envelopeBody({ text: 'b' }) });
    const all = await g.store.audit.list({ limit: 1000 });
    const seen: number[] = [];
    let after = 0;
    for (;;) {
      const page = await g.call('GET', `/v1/audit?after=${after}&limit=3`, { token: 'viewer' });
      assert.equal(page.status, 200);
      const body = page.body as unknown as { events: Array<{ seq: number }>; next: number | null };
      seen.push(...body.events.map((e) => e.seq));
      if (body.next === null) break;
      after = body.next;
    }
    assert.deepEqual(
      seen,
      all.map((e) => e.seq),
    );
    const ofRun = await g.call('GET', `/v1/audit?run=${a.body.run.id}`, { token: 'viewer' });
    const events = (ofRun.body as unknown as { events: Array<{ runId: string }> }).events;
    assert.ok(events.length > 0 && events.every((e) => e.runId === a.body.run.id));
  });
});

describe('approvals', () => {
  it('lists a pending approval and records the token name as the decider', async (t) => {
    const issues: FieldIssue[] = [];
    const policy = compilePolicy(
      policySchema.parse({ rules: [{ id: 'sign-off', kind: 'approval', actions: ['payments.*'], tier: 'approve', approvers: 'finance', expiresIn: '1h' }] }),
      issues,
    );
    assert.deepEqual(issues, []);
    const reg = registry(
      {
        echo: (input: TurnInput) => {
          if (input.task.turn === 1) return { actions: [{ type: 'tool', tool: 'payments.send', input: { amount: 5 } }] };
          const r = input.results[0]!;
          return { output: r.ok ? { paid: r.value } : { refused: r.error.code } };
        },
      },
      { 'payments.send': () => 'paid' },
      { policy },
    );
    const g = await startTestGateway(t, { reg });
    await g.startWorker(reg);
    const sub = await g.call('POST', '/v1/envelopes', { body: envelopeBody() });
    let approvals: Array<{ id: string; state: string }> = [];
    await until('a pending approval', async () => {
      approvals = (await g.call('GET', `/v1/approvals?run=${sub.body.run.id}`, { token: 'viewer' })).body.approvals;
      return approvals.length === 1;
    });
    const id = approvals[0]!.id;
    const denied = await g.call('POST', `/v1/approvals/${id}/decision`, { token: 'viewer', body: { approve: true } });
    assert.equal(denied.status, 403);
    const bad = await g.call('POST', `/v1/approvals/${id}/decision`, { token: 'operator', body: { approve: 'yes' } });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.error.issues!.map((i: { path: string }) => i.path), ['approve']);
    assert.equal((await g.store.approvals.get(id))?.state, 'pending', 'bad input changed nothing');
    const ok = await g.call('POST', `/v1/approvals/${id}/decision`, { token: 'operator', body: { approve: true, reason: 'fine' } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.approval.state, 'approved');
    assert.equal(ok.body.approval.decidedBy, 'operator');
    assert.equal(ok.body.approval.decisionReason, 'fine');
    assert.equal((await g.call('POST', `/v1/approvals/${id}/decision`, { token: 'operator', body: { approve: false } })).status, 409);
    assert.equal((await g.call('POST', '/v1/approvals/apr_nope/decision', { token: 'operator', body: { approve: false } })).status, 404);
    const run = await finished(g.store, sub.body.run.id);
    assert.deepEqual(run.output, { paid: 'paid' });
    assert.equal((await g.call('GET', '/v1/approvals?state=approved')).body.approvals.length, 1);
  });
});

/** A stand-in channel adapter: header x-sig must be "good"; the body decides what comes back. */
class FakeChannel implements ChannelAdapter {
  readonly name = 'hooks';
  seen: InboundRequest[] = [];
  async receive(req: InboundRequest): Promise<InboundResult> {
    this.seen.push(req);
    if (req.headers.get('x-sig') !== 'good') throw new UnauthorizedRequestError('bad signature');
    const body = JSON.parse(req.rawBody) as { type: string; id: string; user: string; text: string };
    if (body.type === 'ping') return { kind: 'respond', status: 200, body: { type: 1 } };
    if (body.type === 'bot') return { kind: 'ignore', status: 200, body: 'ok' };
    if (body.type !== 'message') throw new BadChannelRequestError(`unknown event type ${body.type}`);
    return {
      kind: 'envelope',
      envelope: {
        channel: 'hooks',
        account: req.account,
        peer: { kind: 'dm', id: body.user },
        parentPeer: null,
        sender: { id: body.user },
        thread: null,
        text: body.text,
        data: body,
        idempotencyKey: `hooks:${body.id}`,
        replyTo: null,
      },
      ack: { status: 200, body: { ok: true } },
    };
  }
  async send() {
    return { ok: true, retryable: false };
  }
  replyTarget() {
    return { to: 'somewhere' };
  }
}

describe('channel webhooks', () => {
  it('stores a signed message before the ack; handshakes and ignores store nothing; bad signatures are 401', async (t) => {
    const fake = new FakeChannel();
    const g = await startTestGateway(t, { channels: new Map([['hooks', fake]]) });
    const post = (body: unknown, sig = 'good') => g.call('POST', '/v1/channels/hooks/acct-1', { token: null, body, headers: { 'x-sig': sig } });

    const ping = await post({ type: 'ping' });
    assert.equal(ping.status, 200);
    assert.deepEqual(ping.body, { type: 1 });
    const bot = await post({ type: 'bot' });
    assert.equal(bot.text, 'ok');
    assert.deepEqual(await stored(g.store), { envelopes: 0, runs: 0 });

    const tampered = await post({ type: 'message', id: 'e1', user: 'u1', text: 'hi' }, 'bad');
    assert.equal(tampered.status, 401);
    assert.equal(tampered.body.error.code, 'UNAUTHORIZED');
    const weird = await post({ type: 'sticker', id: 'e0', user: 'u1', text: '' });
    assert.equal(weird.status, 400);
    assert.deepEqual(await stored(g.store), { envelopes: 0, runs: 0 });

    const msg = await post({ type: 'message', id: 'e1', user: 'u1', text: 'hi' });
    assert.equal(msg.status, 200);
    assert.deepEqual(msg.body, { ok: true });
    assert.equal(fake.seen.at(-1)!.account, 'acct-1');
    assert.equal(fake.seen.at(-1)!.rawBody, JSON.stringify({ type: 'message', id: 'e1', user: 'u1', text: 'hi' }), 'the adapter gets the raw body');
    const [envelope] = await g.store.envelopes.list({ limit: 5 });
    assert.equal(envelope?.channel, 'hooks');
    assert.deepEqual(envelope?.replyTo, { to: 'somewhere' });
    assert.equal((await g.store.audit.list({ limit: 50 })).find((e) => e.kind === 'envelope.received')?.actor, 'channel:hooks');
    // The platform retries: acknowledged again, nothing new stored.
    assert.equal((await post({ type: 'message', id: 'e1', user: 'u1', text: 'hi' })).status, 200);
    assert.deepEqual(await stored(g.store), { envelopes: 1, runs: 1 });

    const unknown = await g.call('POST', '/v1/channels/carrier-pigeon/acct-1', { token: null, body: { type: 'message' } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'UNKNOWN_CHANNEL');
    assert.deepEqual(await stored(g.store), { envelopes: 1, runs: 1 });
  });
});

describe('health', () => {
  it('healthz is always 200; readyz is 503 with the reason when the schema is not current', async (t) => {
    const g = await startTestGateway(t);
    assert.deepEqual((await g.call('GET', '/healthz', { token: null })).body, { ok: true });
    const ready = await g.call('GET', '/readyz', { token: null });
    assert.equal(ready.status, 200);
    assert.equal(ready.body.ready, true);

    const db = new DatabaseSync(join(g.dir, 'spine.db'));
    db.exec('DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)');
    db.close();
    const outdated = await g.call('GET', '/readyz', { token: null });
    assert.equal(outdated.status, 503);
    assert.equal(outdated.body.ready, false);
    assert.equal(outdated.body.error.code, 'SCHEMA_OUTDATED');
    assert.match(outdated.body.error.message, /spine migrate/);
    assert.equal((await g.call('GET', '/healthz', { token: null })).status, 200);
  });

  it('readyz is 503 while draining', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const issues: FieldIssue[] = [];
    const reg = registry({ echo: () => ({ output: 1 }) });
    const intake = new Intake(store, reg, { bindings: compileBindings([], ['echo'], issues), sessions: compileSessions(undefined, issues) }, systemClock);
    const gw = createGateway({ store, intake, settings: DEFAULT_GATEWAY, clock: systemClock });
    assert.equal((await gw.app.request('/readyz')).status, 200);
    gw.drain();
    const r = await gw.app.request('/readyz');
    assert.equal(r.status, 503);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'DRAINING');
  });
});

describe('shutdown', () => {
  it('drains: a request in flight gets its answer; new connections are refused', async (t) => {
    const held = gate();
    const entered = gate();
    const slow: ChannelAdapter = {
      name: 'slow',
      async receive() {
        entered.open();
        await held.promise;
        return { kind: 'respond', status: 200, body: { ok: 'late' } };
      },
      async send() {
        return { ok: true, retryable: false };
      },
    };
    const g = await startTestGateway(t, { channels: new Map([['slow', slow]]) });
    const inFlight = g.call('POST', '/v1/channels/slow/a', { token: null, body: {} });
    await entered.promise;
    const closing = g.gw.close();
    await assert.rejects(fetch(`${g.url}/healthz`), 'no new connections while draining');
    held.open();
    const r = await inFlight;
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { ok: 'late' });
    await closing;
  });
});
