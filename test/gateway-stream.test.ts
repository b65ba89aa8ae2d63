// The live event stream over SSE (/v1/events) and WebSocket (/v1/ws): audit events
// reach a connected client; a client that reconnects with its last event id gets
// exactly what was committed while it was away — no gap, no duplicate — then live
// events; subscribing while commits are in flight loses and repeats nothing; events
// committed by another process arrive too; a shutdown ends streams with their cursor;
// seqs that become visible out of order (PostgreSQL) are held, not skipped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { ManualClock } from '../src/core/clock.ts';
import { silentLogger } from '../src/core/log.ts';
import { EventHub } from '../src/gateway/events.ts';
import { openStore } from '../src/runtime/open-store.ts';
import type { AuditEvent, Store } from '../src/store/store.ts';
import { envelopeBody, startTestGateway, type TestGateway } from './fixtures/gateway-setup.ts';
import { until } from './helpers.ts';

interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

/** A minimal SSE client over fetch: collects messages; `close()` disconnects. */
function sse(url: string, headers: Record<string, string>) {
  const messages: SseMessage[] = [];
  const ctl = new AbortController();
  let ended = false;
  const done = (async () => {
    const res = await fetch(url, { headers, signal: ctl.signal });
    assert.equal(res.status, 200, await (res.status === 200 ? Promise.resolve('') : res.text()));
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const msg: SseMessage = { id: null, event: 'message', data: '' };
          let has = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':') || line.startsWith('retry:')) continue;
            const [field, ...rest] = line.split(':');
            const value = rest.join(':').replace(/^ /, '');
            if (field === 'id') msg.id = value;
            if (field === 'event') msg.event = value;
            if (field === 'data') msg.data += value;
            has = true;
          }
          if (has) messages.push(msg);
        }
      }
    } catch (err) {
      if (!ctl.signal.aborted) throw err;
    } finally {
      ended = true;
    }
  })();
  return {
    messages,
    events: () => messages.filter((m) => m.event === 'message').map((m) => JSON.parse(m.data) as { seq: number; kind: string; runId: string | null }),
    ready: () => until('SSE ready', () => messages.some((m) => m.event === 'ready')),
    get ended() {
      return ended;
    },
    close: async () => {
      ctl.abort();
      await done.catch(() => undefined);
    },
    done,
  };
}

/** A WebSocket client that collects the gateway's messages. */
async function wsClient(url: string, token: string) {
  const messages: Array<{ type: string; seq: number; event?: { seq: number; kind: string; runId: string | null }; reason?: string }> = [];
  const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers: { authorization: `Bearer ${token}` } });
  let closeCode: number | null = null;
  ws.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString()) as (typeof messages)[number]));
  ws.on('close', (code) => (closeCode = code));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    messages,
    events: () => messages.filter((m) => m.type === 'event').map((m) => m.event!),
    ready: () => until('WS ready', () => messages.some((m) => m.type === 'ready')),
    get closeCode() {
      return closeCode;
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (ws.readyState === ws.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close();
      }),
  };
}

async function submit(g: TestGateway, text: string): Promise<string> {
  const r = await g.call('POST', '/v1/envelopes', { body: envelopeBody({ text, peer: { kind: 'dm', id: text } }) });
  assert.equal(r.status, 202, r.text);
  return r.body.run.id;
}

async function allSeqs(g: TestGateway, after = 0, runId?: string): Promise<number[]> {
  return (await g.store.audit.list({ afterSeq: after, limit: 100_000, ...(runId ? { runId } : {}) })).map((e) => e.seq);
}

describe('SSE /v1/events', () => {
  it('delivers live events with their seq as id; a reconnect with Last-Event-ID misses and repeats nothing', async (t) => {
    const g = await startTestGateway(t);
    const auth = { authorization: `Bearer ${g.tokens.viewer}` };
    await submit(g, 'before'); // before the client connects: not part of a stream "from now on"
    const c1 = sse(`${g.url}/v1/events`, auth);
    await c1.ready();
    const run = await submit(g, 'live');
    await until('live events', () => c1.events().some((e) => e.kind === 'run.created' && e.runId === run) || c1.events().length >= 3);
    const live = c1.events();
    assert.ok(live.length > 0);
    assert.deepEqual(
      live.map((e) => e.seq),
      (await allSeqs(g, live[0]!.seq - 1)).slice(0, live.length),
    );
    assert.equal(c1.messages.filter((m) => m.event === 'message').at(-1)!.id, String(live.at(-1)!.seq), 'id is the seq');
    await until('all live events', async () => c1.events().length === (await allSeqs(g, live[0]!.seq - 1)).length);
    const lastId = c1.messages.filter((m) => m.id !== null).at(-1)!.id!;
    await c1.close();

    // Committed while the client is away.
    for (let i = 0; i < 5; i++) await submit(g, `away-${i}`);
    const missed = await allSeqs(g, Number(lastId));
    assert.ok(missed.length >= 10);

    const c2 = sse(`${g.url}/v1/events`, { ...auth, 'Last-Event-ID': lastId });
    await c2.ready();
    assert.deepEqual(
      c2.events().map((e) => e.seq),
      missed,
      'exactly the missed events, in order',
    );
    await submit(g, 'after');
    const expected = await allSeqs(g, Number(lastId));
    await until('live after backlog', () => c2.events().length === expected.length);
    assert.deepEqual(
      c2.events().map((e) => e.seq),
      expected,
    );
    await c2.close();

    // ?after= does the same, and overrides nothing else; after=0 replays the whole log.
    const c3 = sse(`${g.url}/v1/events?after=0&access_token=${g.tokens.viewer}`, {});
    await c3.ready();
    assert.deepEqual(
      c3.events().map((e) => e.seq),
      await allSeqs(g),
    );
    await c3.close();
  });

  it('filters by run', async (t) => {
    const g = await startTestGateway(t);
    const a = await submit(g, 'a');
    await submit(g, 'b');
    const c = sse(`${g.url}/v1/events?after=0&run=${a}`, { authorization: `Bearer ${g.tokens.viewer}` });
    await c.ready();
    const events = c.events();
    assert.ok(events.length > 0);
    assert.ok(events.every((e) => e.runId === a));
    assert.deepEqual(
      events.map((e) => e.seq),
      await allSeqs(g, 0, a),
    );
    await c.close();
  });
});

describe('WebSocket /v1/ws', () => {
  it('delivers events; a reconnect with ?after=<last seq> misses and repeats nothing', async (t) => {
    const g = await startTestGateway(t);
    const c1 = await wsClient(`${g.url}/v1/ws`, g.tokens.viewer);
    await c1.ready();
    await submit(g, 'one');
    await until('an event over WS', () => c1.events().length > 0);
    const first = c1.events()[0]!;
    assert.equal(first.kind, 'envelope.received');
    await until('all of it', async () => c1.events().length === (await allSeqs(g, first.seq - 1)).length);
    const last = c1.events().at(-1)!.seq;
    await c1.close();

    for (let i = 0; i < 5; i++) await submit(g, `away-${i}`);
    const c2 = await wsClient(`${g.url}/v1/ws?after=${last}`, g.tokens.viewer);
    await c2.ready();
    const missed = await allSeqs(g, last);
    assert.deepEqual(
      c2.events().map((e) => e.seq),
      missed,
    );
    const ready = c2.messages.find((m) => m.type === 'ready')!;
    assert.equal(ready.seq, missed.at(-1));
    await submit(g, 'later');
    const expected = await allSeqs(g, last);
    await until('live after backlog', () => c2.events().length === expected.length);
    assert.deepEqual(
      c2.events().map((e) => e.seq),
      expected,
    );
    await c2.close();
  });

  it('refuses an upgrade without a token (401) or with a bad cursor (400)', async (t) => {
    const g = await startTestGateway(t);
    const status = (url: string, headers: Record<string, string> = {}) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers });
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
        });
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('error', () => undefined);
      });
    assert.equal(await status(`${g.url}/v1/ws`), 401);
    assert.equal(await status(`${g.url}/v1/ws`, { authorization: `Bearer ${g.tokens.ingressApi}` }), 403);
    assert.equal(await status(`${g.url}/v1/ws?after=abc`, { authorization: `Bearer ${g.tokens.viewer}` }), 400);
    assert.equal(await status(`${g.url}/v1/ws?access_token=${g.tokens.viewer}`), 101);
  });
});

describe('the stream under load and across processes', () => {
  it('clients that subscribe while commits are in flight get every event exactly once', async (t) => {
    const g = await startTestGateway(t);
    let stop = false;
    const writer = (async () => {
      let i = 0;
      while (!stop) await Promise.all([submit(g, `w${i++}`), submit(g, `x${i++}`)]);
    })();
    const clients = [];
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 15));
      clients.push(i % 2 === 0 ? await wsClient(`${g.url}/v1/ws?after=0`, g.tokens.viewer) : sse(`${g.url}/v1/events?after=0`, { authorization: `Bearer ${g.tokens.viewer}` }));
    }
    // Enough commits while every client is subscribed (counted, not timed: a loaded machine commits slower).
    const subscribedAt = (await allSeqs(g)).length;
    await until('commits while subscribed', async () => (await allSeqs(g)).length > Math.max(40, subscribedAt + 20), 30_000);
    stop = true;
    await writer;
    const expected = await allSeqs(g);
    assert.ok(expected.length > 40, `${expected.length} events`);
    for (const c of clients) {
      await until('client caught up', () => c.events().length >= expected.length);
      assert.deepEqual(
        c.events().map((e) => e.seq),
        expected,
      );
    }
    for (const c of clients) await c.close();
  });

  it('events committed by another process arrive (polled)', async (t) => {
    const g = await startTestGateway(t, { settings: { eventPollMs: 20 } });
    const c = await wsClient(`${g.url}/v1/ws`, g.tokens.viewer);
    await c.ready();
    // A second store on the same file: its commits do not fire this process's onCommitted.
    const other = openStore({ url: `sqlite:${g.dir}/spine.db`, durability: 'fast' });
    t.after(() => other.close());
    await other.audit.append([{ kind: 'test.elsewhere', data: { n: 1 } }], Date.now());
    await until("the other process's event", () => c.events().some((e) => e.kind === 'test.elsewhere'), 2_000);
    await c.close();
  });

  it('a shutdown ends open streams with their cursor, and refuses new ones', async (t) => {
    const g = await startTestGateway(t);
    await submit(g, 'x');
    const w = await wsClient(`${g.url}/v1/ws?after=0`, g.tokens.viewer);
    const s = sse(`${g.url}/v1/events?after=0`, { authorization: `Bearer ${g.tokens.viewer}` });
    await w.ready();
    await s.ready();
    const last = (await allSeqs(g)).at(-1)!;
    await g.gw.close();
    await until('WS closed', () => w.closeCode !== null);
    assert.equal(w.closeCode, 1001);
    const end = w.messages.at(-1)!;
    assert.equal(end.type, 'end');
    assert.equal(end.reason, 'shutdown');
    assert.equal(end.seq, last);
    await s.done;
    const sseEnd = s.messages.at(-1)!;
    assert.equal(sseEnd.event, 'end');
    assert.deepEqual(JSON.parse(sseEnd.data), { reason: 'shutdown', seq: last });
    await assert.rejects(fetch(`${g.url}/healthz`), 'the server no longer accepts connections');
  });
});

describe('the hub and out-of-order commits (as on PostgreSQL)', () => {
  /** A store whose audit log becomes visible out of seq order, as concurrent PostgreSQL transactions commit. */
  function fakeStore() {
    const visible: AuditEvent[] = [];
    const listeners = new Set<() => void>();
    const store = {
      audit: {
        latestSeq: async () => visible.reduce((m, e) => Math.max(m, e.seq), 0),
        list: async (f: { afterSeq?: number; limit: number; runId?: string }) =>
          visible
            .filter((e) => e.seq > (f.afterSeq ?? 0) && (!f.runId || e.runId === f.runId))
            .sort((a, b) => a.seq - b.seq)
            .slice(0, f.limit),
      },
      onCommitted: (l: () => void) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    } as unknown as Store;
    const commit = (seq: number, at = Date.now()) => {
      visible.push({ seq, at, kind: 'test', runId: null });
      for (const l of listeners) l();
    };
    return { store, commit };
  }

  function collect(hub: EventHub, after: number | null) {
    const seqs: number[] = [];
    const sub = hub.subscribe({ after, runId: null, sink: { send: (e) => (seqs.push(e.seq), true), ready: () => undefined, end: () => undefined } });
    return { seqs, sub };
  }

  // The hub's time is a manual clock: a gap is held until the test moves the clock, and
  // "nothing was delivered" is checked after the hub's pass has provably run (it went back to sleep).
  it('holds a later seq until the earlier one commits, then delivers both in order', async () => {
    const clock = new ManualClock(Date.now());
    const { store, commit } = fakeStore();
    commit(1, clock.now());
    commit(2, clock.now());
    const hub = new EventHub(store, { pollMs: 10, log: silentLogger, clock });
    const c = collect(hub, 0);
    await c.sub;
    await until('1 and 2', () => c.seqs.length === 2);
    commit(4, clock.now()); // 3 is still in flight; the commit wakes the hub
    await clock.waitForTimers(1); // its pass is done: asleep again
    assert.deepEqual(c.seqs, [1, 2], 'seq 4 waits for 3');
    const late = collect(hub, 2); // a client resuming now must not jump past 3 either
    await late.sub;
    commit(3, clock.now());
    await until('3 and 4', () => c.seqs.length === 4 && late.seqs.length === 2);
    assert.deepEqual(c.seqs, [1, 2, 3, 4]);
    assert.deepEqual(late.seqs, [3, 4]);
    hub.close();
  });

  it('skips a seq that never commits (rolled back) once it is clearly gone', async () => {
    const clock = new ManualClock(Date.now());
    const { store, commit } = fakeStore();
    const hub = new EventHub(store, { pollMs: 10, log: silentLogger, clock });
    const c = collect(hub, null);
    await c.sub;
    commit(1, clock.now());
    commit(3, clock.now()); // 2 was rolled back
    await clock.waitForTimers(1);
    assert.deepEqual(c.seqs, [1], 'held while 2 may still commit');
    clock.advance(1_001); // past GAP_WAIT_MS: the retry timer fires and the gap is given up
    await until('past the gap', () => c.seqs.length === 2);
    assert.deepEqual(c.seqs, [1, 3]);
    commit(5, clock.now() - 60_000); // an old event after a gap: no need to wait
    await until('5 at once', () => c.seqs.length === 3);
    hub.close();
  });
});
