// Intake, routing and session lanes end to end on a real store (SQLite; PostgreSQL
// under `npm run test:pg`) and a real
// Worker: unroutable envelopes, decisions in the audit, lanes (order, concurrency,
// failure, cancel, retry), session history, resets, forks, isolated sessions,
// routing agents and idempotency. Waits are on store state, never fixed sleeps.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it, type TestContext } from 'node:test';
import type { AgentFunction } from '../../src/core/agent.ts';
import { ManualClock, systemClock, type Clock } from '../../src/core/clock.ts';
import type { FieldIssue } from '../../src/core/errors.ts';
import type { Run, SessionMessage, TurnInput } from '../../src/core/types.ts';
import { Worker } from '../../src/engine/worker.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import { envelopeInput } from '../../src/intake/envelope.ts';
import { Intake } from '../../src/intake/intake.ts';
import { compileBindings, type BindingConfig } from '../../src/routing/bindings.ts';
import { compileSessions, type SessionsConfig } from '../../src/routing/sessions.ts';
import type { AuditEvent, Store } from '../../src/store/store.ts';
import { FAST_WORKER, finished, forge, gate, registry, tempStore, until, type AgentDef } from '../helpers.ts';

// ── fixtures ───────────────────────────────────────────────────────────────────

function msg(peer: string, text: string, over: Partial<Envelope> = {}): Envelope {
  return {
    channel: 'api',
    account: 'default',
    peer: { kind: 'dm', id: peer },
    parentPeer: null,
    sender: { id: peer },
    thread: null,
    text,
    data: null,
    idempotencyKey: randomUUID(),
    replyTo: null,
    ...over,
  };
}

const textOf = (input: TurnInput): string => (input.task.input as { text: string }).text;

/** A user message and the agent answer of an echo agent, as history shows them. */
const said = (h: SessionMessage[]) => h.map((m) => (m.role === 'user' ? `user:${m.text}` : `agent:${(m.output as { echo: string }).echo}`));

interface Setup {
  store: Store;
  intake: Intake;
  worker: Worker | null;
  /** Opened before the worker stops, so no turn is left hanging. */
  gates: Array<{ open: (v: void) => void }>;
  accept: (e: Envelope, opts?: { agent?: string }) => Promise<Run>;
}

async function setup(
  t: TestContext,
  agents: Record<string, AgentFunction | AgentDef>,
  opts: { bindings?: BindingConfig[]; sessions?: SessionsConfig; worker?: boolean; clock?: Clock; concurrency?: number } = {},
): Promise<Setup> {
  const reg = registry(agents);
  const issues: FieldIssue[] = [];
  const routing = {
    bindings: compileBindings(opts.bindings ?? [{ id: 'all', agent: Object.keys(agents)[0]! }], [...reg.agents.keys()], issues),
    sessions: compileSessions(opts.sessions, issues),
  };
  assert.deepEqual(issues, []);
  const { store, cleanup } = await tempStore();
  const clock = opts.clock ?? systemClock;
  const intake = new Intake(store, reg, routing, clock);
  const s: Setup = {
    store,
    intake,
    worker: null,
    gates: [],
    accept: async (e, o = {}) => {
      const r = await intake.accept(e, { actor: 'test', ...o });
      assert.ok(r.run, `routed: ${JSON.stringify(r.envelope.error)}`);
      return r.run;
    },
  };
  t.after(async () => {
    for (const g of s.gates) g.open();
    await s.worker?.stop();
    await cleanup();
  });
  if (opts.worker !== false) {
    s.worker = new Worker({ store, registry: reg, clock, options: { ...FAST_WORKER, concurrency: opts.concurrency ?? 4 } });
    await s.worker.start();
  }
  return s;
}

/** The raw `waiting_for` of a task (not part of the Task port). */
async function waitingFor(store: Store, taskId: string): Promise<string | null> {
  const { rows } = await forge<{ waiting_for: string | null }>(store, 'SELECT waiting_for FROM tasks WHERE id = ?', [taskId]);
  return rows[0]!.waiting_for;
}

async function audit(store: Store, kind: string): Promise<AuditEvent[]> {
  return (await store.audit.list({ limit: 100_000 })).filter((e) => e.kind === kind);
}

async function taskState(store: Store, run: Run): Promise<string> {
  return (await store.tasks.get(run.rootTaskId))!.state;
}

// ── routing through intake ─────────────────────────────────────────────────────

describe('intake routing', () => {
  const bindings: BindingConfig[] = [
    { id: 'ops-room', match: { channel: 'slack', group: 'C-OPS' }, agent: 'ops' },
    { id: 'vip', match: { peer: 'U-VIP' }, agent: 'vip' },
  ];

  it('an envelope no binding matches (no default) is stored unroutable, with the reason, and no run', async (t) => {
    const s = await setup(t, { ops: () => ({ output: 'ops' }), vip: () => ({ output: 'vip' }) }, { bindings, worker: false });
    const r = await s.intake.accept(msg('U-2', 'lost', { channel: 'telegram' }), { actor: 'test' });
    assert.equal(r.created, true);
    assert.equal(r.run, null);
    assert.equal(r.envelope.state, 'unroutable');
    assert.equal(r.envelope.runId, null);
    assert.equal(r.envelope.sessionKey, null);
    assert.equal(r.envelope.error?.code, 'UNROUTABLE');
    assert.equal(r.envelope.error?.retryable, false);
    assert.match(r.envelope.error.message, /no binding matches channel=telegram account=default peer=dm:U-2 and there is no default binding/);
    assert.match(r.envelope.error.message, /ops-room: channel telegram ≠ slack; group \(none\) ≠ C-OPS/);
    assert.match(r.envelope.error.message, /vip: peer U-2 ≠ U-VIP/);
    const route = r.envelope.route as { binding: null; candidates: Array<{ binding: string; matched: boolean }> };
    assert.equal(route.binding, null);
    assert.deepEqual(
      route.candidates.map((c) => [c.binding, c.matched]),
      [
        ['ops-room', false],
        ['vip', false],
      ],
    );
    // Stored as such, and nothing else was.
    const stored = await s.store.envelopes.get(r.envelope.id);
    assert.equal(stored?.state, 'unroutable');
    assert.deepEqual(await s.store.envelopes.list({ state: 'unroutable', limit: 10 }).then((l) => l.map((e) => e.id)), [r.envelope.id]);
    assert.deepEqual(await s.store.runs.list({ limit: 10 }), []);
    assert.deepEqual(await s.store.sessions.list({ limit: 10 }), []);
    const [unroutable] = await audit(s.store, 'route.unroutable');
    assert.equal((unroutable!.data as { envelope: string }).envelope, r.envelope.id);
    assert.equal((unroutable!.data as { error: { code: string } }).error.code, 'UNROUTABLE');
    assert.deepEqual(await audit(s.store, 'route.decided'), []);
    // A redelivery of the same event stays unroutable and still makes no run.
    const again = await s.intake.accept(msg('U-2', 'lost', { channel: 'telegram', idempotencyKey: r.envelope.idempotencyKey }), { actor: 'test' });
    assert.equal(again.created, false);
    assert.equal(again.envelope.id, r.envelope.id);
    assert.equal(again.run, null);
    assert.deepEqual(await s.store.runs.list({ limit: 10 }), []);
  });

  it('a routed envelope records the binding that fired and why, on the envelope and in the audit', async (t) => {
    const s = await setup(t, { ops: () => ({ output: 'ops' }), vip: () => ({ output: 'vip' }) }, { bindings });
    const r = await s.intake.accept(msg('U-VIP', 'hello', { channel: 'slack', peer: { kind: 'group', id: 'C-OPS' }, sender: { id: 'U-1' } }), { actor: 'test' });
    assert.equal(r.envelope.state, 'routed');
    assert.equal(r.run?.agent, 'ops');
    assert.equal(r.run?.envelopeId, r.envelope.id);
    assert.equal(r.envelope.runId, r.run?.id);
    assert.equal(r.envelope.sessionKey, 'agent:ops:slack:group:C-OPS');
    assert.equal(r.run?.sessionKey, 'agent:ops:slack:group:C-OPS');
    const route = r.envelope.route as { binding: string; tier: string; why: string };
    assert.equal(route.binding, 'ops-room');
    assert.equal(route.tier, 'group');
    assert.equal(route.why, 'ops-room (tier group: channel=slack, group=C-OPS)');
    const decided = (await audit(s.store, 'route.decided')).find((e) => (e.data as { envelope: string }).envelope === r.envelope.id);
    assert.ok(decided);
    assert.equal(decided.agent, 'ops');
    assert.equal(decided.actor, 'test');
    assert.deepEqual((decided.data as { decision: { binding: string; why: string } }).decision.binding, 'ops-room');
    assert.equal((decided.data as { decision: { why: string } }).decision.why, route.why);
    assert.equal((await finished(s.store, r.run.id)).output, 'ops');
  });

  it('addressed directly to an agent: no binding; an unknown agent is refused and nothing is stored', async (t) => {
    const s = await setup(t, { ops: () => ({ output: 'ops' }), vip: () => ({ output: 'vip' }) }, { bindings, worker: false });
    const r = await s.intake.accept(msg('U-2', 'direct', { channel: 'telegram' }), { actor: 'op', agent: 'vip' });
    assert.equal(r.run?.agent, 'vip');
    assert.deepEqual(r.envelope.route, { binding: null, tier: null, why: 'addressed directly to vip' });
    await assert.rejects(s.intake.accept(msg('U-2', 'nope'), { actor: 'op', agent: 'ghost' }), { code: 'UNKNOWN_AGENT' });
    assert.equal((await s.store.envelopes.list({ limit: 10 })).length, 1);
  });

  it('dmScope variants, groups, threads and a binding scope give the documented session keys', async (t) => {
    const s = await setup(t, { chat: () => ({ output: null }) }, { worker: false });
    const keyFor = async (sessions: SessionsConfig, e: Envelope, binding: BindingConfig = { agent: 'chat' }) => {
      const issues: FieldIssue[] = [];
      const reg = registry({ chat: () => ({ output: null }) });
      const intake = new Intake(s.store, reg, { bindings: compileBindings([binding], ['chat'], issues), sessions: compileSessions(sessions, issues) }, systemClock);
      assert.deepEqual(issues, []);
      const r = await intake.accept(e, { actor: 'test' });
      assert.equal(r.run?.sessionKey, r.envelope.sessionKey);
      return r.run.sessionKey;
    };
    const dm = () => msg('U-5', 'x', { channel: 'slack', account: 'T1' });
    assert.equal(await keyFor({ dmScope: 'main' }, dm()), 'agent:chat:main');
    assert.equal(await keyFor({ dmScope: 'per-peer' }, dm()), 'agent:chat:peer:U-5');
    assert.equal(await keyFor({}, dm()), 'agent:chat:slack:peer:U-5');
    assert.equal(await keyFor({ dmScope: 'per-account-channel-peer' }, dm()), 'agent:chat:slack:T1:peer:U-5');
    assert.equal(await keyFor({}, msg('U-5', 'x', { channel: 'slack', peer: { kind: 'group', id: 'G1' } })), 'agent:chat:slack:group:G1');
    assert.equal(await keyFor({}, msg('U-5', 'x', { channel: 'slack', peer: { kind: 'channel', id: 'C1' }, thread: '17.5' })), 'agent:chat:slack:thread:C1:17.5');
    assert.equal(await keyFor({ dmScope: 'main' }, msg('U-5', 'x', { peer: { kind: 'group', id: 'G1' } }), { agent: 'chat', session: 'per-peer' }), 'agent:chat:peer:G1');
    const isolated = await keyFor({ dmScope: 'main' }, msg('U-5', 'x', { channel: 'cron' }));
    assert.match(isolated!, /^agent:chat:isolated:env_/);
  });
});

// ── lanes ──────────────────────────────────────────────────────────────────────

describe('session lanes', () => {
  it('20 messages to one session run strictly in order, one at a time, while another session runs concurrently', async (t) => {
    const events: Array<{ ev: 'start' | 'end'; key: string; text: string }> = [];
    const first = gate();
    const chat: AgentFunction = async (input) => {
      const text = textOf(input);
      const key = input.session!.key;
      events.push({ ev: 'start', key, text });
      if (text === 'a-01') await first.promise;
      // A little work, so that two turns in one session would interleave if they could.
      else await new Promise((r) => setTimeout(r, Number(text.at(-1)) % 3));
      events.push({ ev: 'end', key, text });
      return { output: { echo: text } };
    };
    const s = await setup(t, { chat }, { sessions: { dmScope: 'per-peer' }, concurrency: 4 });
    s.gates.push(first);
    const A = 'agent:chat:peer:alice';
    const B = 'agent:chat:peer:bob';

    const texts = Array.from({ length: 20 }, (_, i) => `a-${String(i + 1).padStart(2, '0')}`);
    const runs: Run[] = [];
    for (const text of texts) runs.push(await s.accept(msg('alice', text)));
    assert.ok(runs.every((r) => r.sessionKey === A));
    await until('a-01 in its turn', () => events.some((e) => e.text === 'a-01'));

    // The lane: a-01 holds it, the other 19 wait for it (not queued, so no worker can take them).
    assert.equal((await s.store.sessions.get(A))!.activeRun, runs[0]!.id);
    for (const r of runs.slice(1)) {
      assert.equal(await taskState(s.store, r), 'waiting');
      assert.equal(await waitingFor(s.store, r.rootTaskId), 'lane');
    }
    const created = await s.store.audit.list({ runId: runs[1]!.id, limit: 10 });
    assert.deepEqual(created.find((e) => e.kind === 'task.created')?.data, { depth: 0, waitingFor: 'lane' });

    // Bob's session runs while Alice's lane is busy: his three messages start and finish.
    const bob: Run[] = [];
    for (const text of ['b-1', 'b-2', 'b-3']) bob.push(await s.accept(msg('bob', text)));
    for (const r of bob) assert.equal((await finished(s.store, r.id)).state, 'succeeded');
    assert.ok(bob.every((r) => r.sessionKey === B));
    assert.ok(!events.some((e) => e.ev === 'end' && e.key === A), 'alice is still on a-01');
    assert.deepEqual(
      events.filter((e) => e.key === A).map((e) => `${e.ev}:${e.text}`),
      ['start:a-01'],
      'no other message of alice started',
    );
    assert.equal((await s.store.sessions.get(A))!.activeRun, runs[0]!.id);

    first.open();
    for (const r of runs) assert.equal((await finished(s.store, r.id)).state, 'succeeded');

    // Strictly alternating start/end, in submission order: never two turns of one session at once.
    const expected = texts.flatMap((x) => [`start:${x}`, `end:${x}`]);
    assert.deepEqual(
      events.filter((e) => e.key === A).map((e) => `${e.ev}:${e.text}`),
      expected,
    );
    assert.deepEqual(
      events.filter((e) => e.key === B).map((e) => `${e.ev}:${e.text}`),
      ['start:b-1', 'end:b-1', 'start:b-2', 'end:b-2', 'start:b-3', 'end:b-3'],
    );
    // And bob's whole conversation happened inside alice's first turn.
    const idx = (ev: string, text: string) => events.findIndex((e) => e.ev === ev && e.text === text);
    assert.ok(idx('start', 'b-1') > idx('start', 'a-01') && idx('end', 'b-3') < idx('end', 'a-01'));

    const session = (await s.store.sessions.get(A))!;
    assert.equal(session.activeRun, null);
    assert.equal(session.messages, 20);
    // Each admission is audited as the lane's doing.
    const admitted = (await audit(s.store, 'task.queued')).filter((e) => e.actor === 'lane' && (e.data as { session: string }).session === A);
    assert.deepEqual(
      admitted.map((e) => e.runId),
      runs.slice(1).map((r) => r.id),
    );
  });

  it('a failed run frees the lane and the next message starts', async (t) => {
    const starts: string[] = [];
    let seen: SessionMessage[] | null = null;
    const s = await setup(t, {
      chat: {
        retry: { maxAttempts: 1 },
        fn: (input) => {
          starts.push(textOf(input));
          if (textOf(input) === 'boom') throw new Error('kaboom');
          seen = input.session!.history;
          return { output: { echo: textOf(input) } };
        },
      },
    });
    const boom = await s.accept(msg('carol', 'boom'));
    const after = await s.accept(msg('carol', 'after'));
    assert.equal((await finished(s.store, boom.id)).state, 'failed');
    assert.equal((await finished(s.store, after.id)).state, 'succeeded');
    assert.deepEqual(starts, ['boom', 'after']);
    // The failed message is part of the history, without an answer.
    assert.deepEqual(
      seen!.map((m) => [m.role, m.text, m.runId]),
      [['user', 'boom', boom.id]],
    );
    assert.equal((await s.store.sessions.get(boom.sessionKey!))!.activeRun, null);
  });

  it('cancelling the active run admits the next; cancelling a waiting run leaves the order intact', async (t) => {
    const starts: string[] = [];
    const hold = gate();
    const s = await setup(t, {
      chat: async (input) => {
        starts.push(textOf(input));
        if (textOf(input).startsWith('hold')) await hold.promise;
        return { output: { echo: textOf(input) } };
      },
    });
    s.gates.push(hold);
    const [h, w2, w3, w4] = [await s.accept(msg('dave', 'hold')), await s.accept(msg('dave', 'w2')), await s.accept(msg('dave', 'w3')), await s.accept(msg('dave', 'w4'))];
    await until('hold in its turn', () => starts.includes('hold'));

    // Cancel a waiting run: it never starts, and does not disturb the lane.
    await s.store.runs.cancel(w3.id, Date.now(), 'test', 'changed my mind');
    assert.equal((await s.store.runs.get(w3.id))!.state, 'cancelled');
    assert.equal(await taskState(s.store, w3), 'cancelled');
    assert.equal((await s.store.sessions.get(h.sessionKey!))!.activeRun, h.id);
    assert.equal(await taskState(s.store, w2), 'waiting');

    // Cancel the active run: the next waiting one is admitted at once.
    await s.store.runs.cancel(h.id, Date.now(), 'test');
    assert.equal((await finished(s.store, w2.id)).state, 'succeeded');
    assert.equal((await finished(s.store, w4.id)).state, 'succeeded');
    assert.deepEqual(starts, ['hold', 'w2', 'w4']);
    assert.equal((await s.store.runs.get(h.id))!.state, 'cancelled');
    assert.equal((await s.store.runs.get(w3.id))!.state, 'cancelled');
    assert.equal((await s.store.sessions.get(h.sessionKey!))!.activeRun, null);
  });

  it('retryRun of a failed session run re-enters the lane: at once when free, else after the run holding it', async (t) => {
    const starts: string[] = [];
    const failedOnce = new Set<string>();
    const histories = new Map<string, string[]>();
    const hold = gate();
    const s = await setup(t, {
      chat: {
        retry: { maxAttempts: 1 },
        fn: async (input) => {
          const text = textOf(input);
          starts.push(text);
          if (text.startsWith('flaky') && !failedOnce.has(text)) {
            failedOnce.add(text);
            throw new Error('first time fails');
          }
          if (text === 'blocker') await hold.promise;
          histories.set(text, input.session!.history.map((m) => `${m.role}:${m.text ?? (m.output as { echo: string }).echo}`));
          return { output: { echo: text } };
        },
      },
    });
    s.gates.push(hold);

    // Lane free: the retried run takes it straight away.
    const free = await s.accept(msg('erin', 'flaky-free'));
    assert.equal((await finished(s.store, free.id)).state, 'failed');
    await s.store.runs.retry(free.id, Date.now(), 'test');
    assert.equal((await finished(s.store, free.id)).state, 'succeeded');

    // Lane busy: the retried run waits for the lane, then goes before later messages (session order).
    const flaky = await s.accept(msg('erin', 'flaky'));
    assert.equal((await finished(s.store, flaky.id)).state, 'failed');
    const blocker = await s.accept(msg('erin', 'blocker'));
    await until('blocker in its turn', () => starts.includes('blocker'));
    const tail = await s.accept(msg('erin', 'tail'));
    const retried = await s.store.runs.retry(flaky.id, Date.now(), 'test');
    assert.equal(retried.state, 'running');
    assert.equal(await taskState(s.store, flaky), 'waiting');
    assert.equal(await waitingFor(s.store, flaky.rootTaskId), 'lane');
    assert.equal((await s.store.sessions.get(flaky.sessionKey!))!.activeRun, blocker.id);
    assert.deepEqual(starts, ['flaky-free', 'flaky-free', 'flaky', 'blocker'], 'the retry does not start beside the blocker');

    hold.open();
    assert.equal((await finished(s.store, flaky.id)).state, 'succeeded');
    assert.equal((await finished(s.store, tail.id)).state, 'succeeded');
    assert.deepEqual(starts, ['flaky-free', 'flaky-free', 'flaky', 'blocker', 'flaky', 'tail']);
    // The retried message answers with the history before it; the later one sees it answered.
    assert.deepEqual(histories.get('flaky'), ['user:flaky-free', 'agent:flaky-free']);
    assert.deepEqual(histories.get('tail'), ['user:flaky-free', 'agent:flaky-free', 'user:flaky', 'agent:flaky', 'user:blocker', 'agent:blocker']);
  });
});

// ── history, resets, forks, isolation ─────────────────────────────────────────

describe('session history', () => {
  it('each turn receives the earlier messages of its session: user text and agent outputs', async (t) => {
    const seen = new Map<string, { key: string; history: SessionMessage[] }>();
    const s = await setup(t, {
      chat: (input) => {
        seen.set(textOf(input), structuredClone(input.session!));
        return { output: { echo: textOf(input) } };
      },
    });
    const runs: Run[] = [];
    for (const text of ['m1', 'm2', 'm3']) runs.push(await s.accept(msg('frank', text)));
    const other = await s.accept(msg('gina', 'elsewhere'));
    for (const r of [...runs, other]) await finished(s.store, r.id);
    const key = 'agent:chat:api:peer:frank';
    assert.deepEqual(seen.get('m1'), { key, history: [] });
    assert.deepEqual(said(seen.get('m2')!.history), ['user:m1', 'agent:m1']);
    const h3 = seen.get('m3')!.history;
    assert.deepEqual(said(h3), ['user:m1', 'agent:m1', 'user:m2', 'agent:m2']);
    assert.deepEqual(
      h3.map((m) => m.runId),
      [runs[0]!.id, runs[0]!.id, runs[1]!.id, runs[1]!.id],
    );
    assert.ok(h3.every((m) => typeof m.at === 'number' && m.at > 0));
    // Another session's messages never leak in.
    assert.deepEqual(seen.get('elsewhere')!.history, []);
    // `sessionMessages` is what the next turn would see.
    assert.deepEqual(said(await s.store.sessions.messages(key, 20)), ['user:m1', 'agent:m1', 'user:m2', 'agent:m2', 'user:m3', 'agent:m3']);
  });

  it('history is bounded: 20 messages by default in the worker, any limit at the store', async (t) => {
    let last: SessionMessage[] = [];
    const s = await setup(t, {
      chat: (input) => {
        last = input.session!.history;
        return { output: { echo: textOf(input) } };
      },
    });
    let run: Run | null = null;
    for (let i = 1; i <= 12; i++) run = await s.accept(msg('hank', `m${i}`));
    await finished(s.store, run!.id);
    // 11 earlier messages with answers = 22; the newest 20 are handed over.
    assert.equal(last.length, 20);
    assert.deepEqual(said(last).slice(0, 2), ['user:m2', 'agent:m2']);
    assert.deepEqual(said(last).slice(-2), ['user:m11', 'agent:m11']);

    // The store honours any limit (sessions.historyLimit): claim the next message by hand.
    await s.worker!.stop();
    s.worker = null;
    await s.accept(msg('hank', 'm13'));
    const [claimed] = await s.store.tasks.claim({ workerId: 'by-hand', limit: 5, leaseMs: 10_000, now: Date.now(), historyLimit: 3 });
    assert.equal(claimed?.session?.key, 'agent:chat:api:peer:hank');
    assert.deepEqual(said(claimed.session.history), ['agent:m11', 'user:m12', 'agent:m12']);
    // What the next turn would see: m13 is in flight, so it has no answer yet.
    assert.deepEqual(said(await s.store.sessions.messages('agent:chat:api:peer:hank', 4)), ['agent:m11', 'user:m12', 'agent:m12', 'user:m13']);
    assert.deepEqual(await s.store.sessions.messages('agent:chat:api:peer:hank', 0), []);
  });

  it('a reset by hand starts the session afresh', async (t) => {
    const seen = new Map<string, string[]>();
    const s = await setup(t, {
      chat: (input) => {
        seen.set(textOf(input), said(input.session!.history));
        return { output: { echo: textOf(input) } };
      },
    });
    const key = 'agent:chat:api:peer:ivy';
    for (const text of ['r1', 'r2']) await finished(s.store, (await s.accept(msg('ivy', text))).id);
    assert.equal(await s.store.sessions.reset(key, 'test', Date.now()), true);
    const info = (await s.store.sessions.get(key))!;
    assert.equal(info.epoch, 1);
    assert.ok(info.resetAt !== null);
    assert.deepEqual(await s.store.sessions.messages(key, 20), []);
    for (const text of ['r3', 'r4']) await finished(s.store, (await s.accept(msg('ivy', text))).id);
    assert.deepEqual(seen.get('r2'), ['user:r1', 'agent:r1']);
    assert.deepEqual(seen.get('r3'), []);
    assert.deepEqual(seen.get('r4'), ['user:r3', 'agent:r3']);
    assert.equal((await s.store.sessions.get(key))!.messages, 4, 'a reset keeps the count, only history starts afresh');
    const [reset] = await audit(s.store, 'session.reset');
    assert.equal(reset?.actor, 'test');
    assert.deepEqual(reset?.data, { session: key });
    await assert.rejects(s.store.sessions.reset('agent:chat:nope', 'test', Date.now()), { code: 'NOT_FOUND' });
  });

  // The reset policies, checked when a message arrives, on a clock shared by intake and worker.
  const policies: Array<{ name: string; sessions: SessionsConfig; steps: Array<[string, string, string[]]> }> = [
    {
      name: 'idle 30 minutes',
      sessions: { reset: { mode: 'idle', idleMinutes: 30 } },
      steps: [
        ['2026-01-15T10:00:00Z', 'i1', []],
        ['2026-01-15T10:29:59Z', 'i2', ['i1']],
        ['2026-01-15T10:59:58Z', 'i3', ['i1', 'i2']],
        ['2026-01-15T11:29:58Z', 'i4', []],
        ['2026-01-15T11:29:58Z', 'i5', ['i4']],
      ],
    },
    {
      name: 'daily at 04:00 New York (09:00Z in winter)',
      sessions: { reset: { mode: 'daily', atHour: 4, timezone: 'America/New_York' } },
      steps: [
        ['2026-01-15T08:00:00Z', 'd1', []],
        ['2026-01-15T08:59:00Z', 'd2', ['d1']],
        ['2026-01-15T09:00:00Z', 'd3', []],
        ['2026-01-16T08:59:59Z', 'd4', ['d3']],
        ['2026-01-16T23:00:00Z', 'd5', []],
      ],
    },
  ];
  for (const p of policies) {
    it(`reset policy: ${p.name}`, async (t) => {
      const clock = new ManualClock(Date.parse(p.steps[0]![0]));
      const seen = new Map<string, string[]>();
      const s = await setup(
        t,
        {
          chat: (input) => {
            seen.set(textOf(input), input.session!.history.filter((m) => m.role === 'user').map((m) => m.text!));
            return { output: { echo: textOf(input) } };
          },
        },
        { sessions: p.sessions, clock },
      );
      for (const [at, text] of p.steps) {
        clock.set(Date.parse(at));
        await finished(s.store, (await s.accept(msg('jo', text))).id);
      }
      for (const [, text, history] of p.steps) assert.deepEqual(seen.get(text), history, text);
      const resets = (await audit(s.store, 'session.reset')).filter((e) => e.actor === 'reset-policy');
      assert.equal(resets.length, p.steps.filter(([, , h], i) => i > 0 && h.length === 0).length);
      const info = (await s.store.sessions.get('agent:chat:api:peer:jo'))!;
      assert.equal(info.epoch, resets.length);
      assert.equal(info.resetAt, Date.parse(p.steps.findLast(([, , h], i) => i > 0 && h.length === 0)![0]));
    });
  }

  it('a fork is seeded with its parent’s history and then goes its own way', async (t) => {
    const seen = new Map<string, { key: string; history: string[] }>();
    const s = await setup(t, {
      chat: (input) => {
        seen.set(textOf(input), { key: input.session!.key, history: said(input.session!.history) });
        return { output: { echo: textOf(input) } };
      },
    });
    const parent = 'agent:chat:api:peer:kim';
    for (const text of ['p1', 'p2']) await finished(s.store, (await s.accept(msg('kim', text))).id);
    const fork = await s.store.sessions.fork(parent, 'agent:chat:fork:one', 20, 'test', Date.now());
    assert.equal(fork.key, 'agent:chat:fork:one');
    assert.equal(fork.agent, 'chat');
    assert.equal(fork.forkedFrom, parent);
    assert.equal(fork.messages, 0);
    assert.deepEqual(said(await s.store.sessions.messages(fork.key, 20)), ['user:p1', 'agent:p1', 'user:p2', 'agent:p2']);
    assert.deepEqual(said(await s.store.sessions.messages(fork.key, 3)), ['agent:p1', 'user:p2', 'agent:p2']);
    const [forked] = await audit(s.store, 'session.forked');
    assert.deepEqual(forked?.data, { from: parent, session: fork.key, messages: 4 });

    // Messages in the fork (addressed by its key at the store port: no binding routes to a fork).
    const intoFork = async (text: string) => {
      const e = msg('kim', text);
      const envelopeId = `env_${randomUUID()}`;
      const r = await s.store.acceptEnvelope(
        {
          envelope: e,
          envelopeId,
          actor: 'test',
          route: {
            ok: true,
            agent: 'chat',
            kind: 'work',
            decision: { binding: null, why: 'fork' },
            session: { key: fork.key, agent: 'chat', resetBefore: Number.MIN_SAFE_INTEGER },
            input: envelopeInput(e, envelopeId),
            maxAttempts: 3,
          },
        },
        Date.now(),
      );
      await finished(s.store, r.run!.id);
    };
    await intoFork('f1');
    await finished(s.store, (await s.accept(msg('kim', 'p3'))).id);
    await intoFork('f2');
    assert.deepEqual(seen.get('f1'), { key: fork.key, history: ['user:p1', 'agent:p1', 'user:p2', 'agent:p2'] });
    assert.deepEqual(seen.get('f2')!.history, ['user:p1', 'agent:p1', 'user:p2', 'agent:p2', 'user:f1', 'agent:f1']);
    assert.deepEqual(seen.get('p3')!.history, ['user:p1', 'agent:p1', 'user:p2', 'agent:p2'], 'the fork does not leak into its parent');
    // A fork's reset drops the seed too.
    await s.store.sessions.reset(fork.key, 'test', Date.now());
    assert.deepEqual(await s.store.sessions.messages(fork.key, 20), []);

    await assert.rejects(s.store.sessions.fork('agent:chat:nope', 'agent:chat:fork:two', 20, 'test', Date.now()), { code: 'NOT_FOUND' });
    await assert.rejects(s.store.sessions.fork(parent, fork.key, 20, 'test', Date.now()), { code: 'INVALID_STATE' });
  });

  it('cron and webhook envelopes are isolated: every envelope its own session, none waits for another', async (t) => {
    const inTurn: Array<{ text: string; key: string; history: number }> = [];
    const hold = gate();
    const s = await setup(t, {
      chat: async (input) => {
        inTurn.push({ text: textOf(input), key: input.session!.key, history: input.session!.history.length });
        await hold.promise;
        return { output: { echo: textOf(input) } };
      },
    });
    s.gates.push(hold);
    const runs = [
      await s.accept(msg('hook-1', 'w1', { channel: 'webhook' })),
      await s.accept(msg('hook-1', 'w2', { channel: 'webhook' })),
      await s.accept(msg('sched', 'c1', { channel: 'cron' })),
    ];
    // All three are in their turn at once: no shared lane.
    await until('all three in their turn', () => inTurn.length === 3);
    hold.open();
    for (const r of runs) {
      assert.equal((await finished(s.store, r.id)).state, 'succeeded');
      assert.equal(r.sessionKey, `agent:chat:isolated:${r.envelopeId}`);
    }
    assert.equal(new Set(inTurn.map((x) => x.key)).size, 3);
    assert.ok(inTurn.every((x) => x.history === 0));
  });
});

// ── routing agents ─────────────────────────────────────────────────────────────

describe('routing agents', () => {
  const bindings: BindingConfig[] = [{ id: 'triage', match: { channel: 'support' }, router: { agent: 'triage', candidates: ['billing', 'tech'], fallback: 'tech' } }];

  async function routerSetup(t: TestContext) {
    const got: Array<{ agent: string; text: string; key: string }> = [];
    const hold = gate();
    const work =
      (agent: string): AgentFunction =>
      (input) => {
        got.push({ agent, text: textOf(input), key: input.session!.key });
        return { output: `${agent} handled ${textOf(input)}` };
      };
    const s = await setup(
      t,
      {
        triage: {
          retry: { maxAttempts: 1 },
          fn: async (input) => {
            const text = textOf(input);
            if (text === 'slow invoice') await hold.promise;
            if (text.includes('invoice')) return { output: { agent: 'billing' } };
            if (text === 'bare') return { output: 'billing' };
            if (text === 'sales') return { output: { agent: 'sales' } };
            if (text === 'nonsense') return { output: { pick: 42 } };
            throw new Error('router crashed');
          },
        },
        billing: work('billing'),
        tech: work('tech'),
        sales: work('sales'),
      },
      { bindings },
    );
    s.gates.push(hold);
    return { s, got, hold };
  }

  const cases: Array<{ text: string; agent: string; fallback: boolean; why: RegExp }> = [
    { text: 'invoice', agent: 'billing', fallback: false, why: /^routing agent triage chose billing$/ },
    { text: 'bare', agent: 'billing', fallback: false, why: /^routing agent triage chose billing$/ },
    { text: 'sales', agent: 'tech', fallback: true, why: /^routing agent triage answered \{"agent":"sales"\}, not one of billing, tech; fallback tech$/ },
    { text: 'nonsense', agent: 'tech', fallback: true, why: /answered \{"pick":42\}, not one of billing, tech; fallback tech$/ },
    { text: 'crash', agent: 'tech', fallback: true, why: /^routing agent triage failed; fallback tech$/ },
  ];

  it('the router’s answer picks a candidate; anything else, or a failed router, goes to the fallback', async (t) => {
    const { s, got } = await routerSetup(t);
    for (const c of cases) {
      const r = await s.intake.accept(msg('U-9', c.text, { channel: 'support' }), { actor: 'test' });
      assert.equal(r.envelope.state, 'routing');
      assert.equal(r.run?.kind, 'router');
      assert.equal(r.run?.agent, 'triage');
      const router = await finished(s.store, r.run.id);
      assert.equal(router.state, c.text === 'crash' ? 'failed' : 'succeeded', c.text);
      assert.equal(await s.intake.sweepRouting(), 1, c.text);

      const env = (await s.store.envelopes.get(r.envelope.id))!;
      assert.equal(env.state, 'routed');
      assert.notEqual(env.runId, router.id);
      const decision = env.route as { binding: string; tier: string; why: string; router: string; fallback: boolean };
      assert.equal(decision.binding, 'triage');
      assert.equal(decision.router, 'triage');
      assert.equal(decision.fallback, c.fallback, c.text);
      assert.match(decision.why, c.why);
      const work = await finished(s.store, env.runId!);
      assert.equal(work.state, 'succeeded');
      assert.equal(work.kind, 'work');
      assert.equal(work.agent, c.agent, c.text);
      assert.equal(work.envelopeId, env.id);
      // In the chosen agent's session, not the router's.
      assert.equal(work.sessionKey, `agent:${c.agent}:support:peer:U-9`);
      assert.equal(env.sessionKey, work.sessionKey);
      assert.equal(work.output, `${c.agent} handled ${c.text}`);
      const decided = (await s.store.audit.list({ runId: work.id, limit: 50 })).find((e) => e.kind === 'route.decided');
      assert.equal(decided?.actor, 'router');
      assert.equal((decided?.data as { decision: { why: string } }).decision.why, decision.why);
    }
    assert.deepEqual(
      got.map((g) => `${g.agent}:${g.text}`),
      cases.map((c) => `${c.agent}:${c.text}`),
    );
    assert.ok(!got.some((g) => g.agent === 'sales'), 'a non-candidate is never run, even though it exists');
    // The chosen agent's session has history across envelopes routed to it.
    assert.deepEqual(
      said(await s.store.sessions.messages('agent:billing:support:peer:U-9', 20)).filter((m) => m.startsWith('user:')),
      ['user:invoice', 'user:bare'],
    );
  });

  it('hands on only once the router is done, and only once however many sweep', async (t) => {
    const { s, hold } = await routerSetup(t);
    const r = await s.intake.accept(msg('U-10', 'slow invoice', { channel: 'support' }), { actor: 'test' });
    await until('router in its turn', async () => (await taskState(s.store, r.run!)) === 'running');
    assert.equal(await s.intake.sweepRouting(), 0, 'the router has not answered yet');
    assert.equal((await s.store.envelopes.get(r.envelope.id))!.state, 'routing');
    hold.open();
    await finished(s.store, r.run!.id);

    const reg = registry({ triage: () => null, billing: () => null, tech: () => null, sales: () => null });
    const issues: FieldIssue[] = [];
    const other = new Intake(s.store, reg, { bindings: compileBindings(bindings, [...reg.agents.keys()], issues), sessions: compileSessions(undefined, issues) }, systemClock);
    const counts = await Promise.all([s.intake.sweepRouting(), other.sweepRouting(), s.intake.sweepRouting(), other.sweepRouting()]);
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      1,
      `handed on once: ${counts.join(', ')}`,
    );
    assert.equal(await s.intake.sweepRouting(), 0);
    const env = (await s.store.envelopes.get(r.envelope.id))!;
    const forEnvelope = (await s.store.runs.list({ limit: 100 })).filter((x) => x.envelopeId === env.id);
    assert.deepEqual(forEnvelope.map((x) => `${x.kind}:${x.agent}`).sort(), ['router:triage', 'work:billing']);
    assert.equal((await finished(s.store, env.runId!)).state, 'succeeded');
    assert.equal((await audit(s.store, 'route.decided')).filter((e) => (e.data as { envelope: string }).envelope === env.id).length, 2, 'the binding, then the router');
  });
});

// ── idempotency ────────────────────────────────────────────────────────────────

describe('idempotent intake', () => {
  it('the same key twice: one envelope, one run; the second answer is the original', async (t) => {
    const s = await setup(t, { chat: (input) => ({ output: { echo: textOf(input) } }) }, { worker: false });
    const e = msg('leo', 'once');
    const a = await s.intake.accept(e, { actor: 'test' });
    const b = await s.intake.accept({ ...e, text: 'a different body' }, { actor: 'test' });
    assert.equal(a.created, true);
    assert.equal(b.created, false);
    assert.equal(b.envelope.id, a.envelope.id);
    assert.equal(b.envelope.text, 'once');
    assert.equal(b.run?.id, a.run?.id);
    assert.equal((await s.store.runs.list({ limit: 10 })).length, 1);
    assert.equal((await s.store.envelopes.list({ limit: 10 })).length, 1);
    assert.equal((await s.store.sessions.get(a.run!.sessionKey!))!.messages, 1);
  });

  it('20 concurrent accepts with one key make exactly one run', async (t) => {
    const s = await setup(t, { chat: (input) => ({ output: { echo: textOf(input) } }) });
    const e = msg('mia', 'racing');
    const results = await Promise.all(Array.from({ length: 20 }, () => s.intake.accept(structuredClone(e), { actor: 'test' })));
    assert.equal(results.filter((r) => r.created).length, 1);
    assert.equal(new Set(results.map((r) => r.envelope.id)).size, 1);
    assert.equal(new Set(results.map((r) => r.run?.id)).size, 1);
    assert.ok(results[0]!.run);
    const runs = await s.store.runs.list({ limit: 100 });
    assert.equal(runs.length, 1);
    assert.equal((await s.store.envelopes.list({ limit: 100 })).length, 1);
    const session = (await s.store.sessions.get(runs[0]!.sessionKey!))!;
    assert.equal(session.messages, 1, 'duplicates never entered the lane');
    assert.equal((await finished(s.store, runs[0]!.id)).state, 'succeeded');
    assert.equal((await s.store.sessions.get(session.key))!.activeRun, null);
  });
});
