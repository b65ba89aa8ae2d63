import assert from 'node:assert/strict';
import { compilePolicy, policySchema } from '../../src/policy/rules.ts';
import { after, before, beforeEach, describe, it } from 'node:test';
import { ManualClock, systemClock } from '../../src/core/clock.ts';
import type { FieldIssue } from '../../src/core/errors.ts';
import type { Json } from '../../src/core/types.ts';
import { OutboxDispatcher, type DispatcherDeps } from '../../src/engine/outbox-dispatcher.ts';
import type { ChannelAdapter } from '../../src/core/channel.ts';
import { createChannels } from '../../src/channels/index.ts';
import { compileChannels } from '../../src/channels/config.ts';
import { Intake } from '../../src/intake/intake.ts';
import { compileBindings } from '../../src/routing/bindings.ts';
import { compileSessions } from '../../src/routing/sessions.ts';
import type { NewOutboxItem, OutboxItem } from '../../src/store/outbox.ts';
import { openStore } from '../../src/runtime/open-store.ts';
import type { AuditEvent, Store } from '../../src/store/store.ts';
import {
  DISCORD_APP,
  DISCORD_BOT,
  FakePlatform,
  SLACK_TOKEN,
  TELEGRAM_TOKEN,
  WEBHOOK_SECRET,
  channelSettings,
  defaultReply,
  discordCommand,
  discordHeaders,
  discordKeys,
  slackHeaders,
  slackMessage,
  telegramHeaders,
  telegramUpdate,
  type Received,
} from '../fixtures/channels.ts';
import { finished, registry, startWorker, tempStore, until } from '../helpers.ts';
import { createHmac } from 'node:crypto';

const keys = discordKeys();
const platform = new FakePlatform();
let channels: ReadonlyMap<string, ChannelAdapter>;

before(async () => {
  await platform.start();
  channels = createChannels(channelSettings({ apiBase: platform.url, discordPublicKey: keys.publicKeyHex }));
});
after(() => platform.close());
beforeEach(() => {
  platform.received.length = 0;
  platform.respond = defaultReply;
});

interface Setup {
  store: Store;
  clock: ManualClock;
  dispatcher: OutboxDispatcher;
  enqueue: (item: Partial<NewOutboxItem> & Pick<NewOutboxItem, 'channel' | 'account' | 'target'>, text?: string) => Promise<OutboxItem>;
}

let n = 0;
async function setup(t: { after: (fn: () => Promise<void>) => void }, options: DispatcherDeps['options'] = {}): Promise<Setup> {
  const { store, cleanup } = await tempStore();
  t.after(cleanup);
  const clock = new ManualClock(Date.UTC(2026, 4, 1));
  const dispatcher = new OutboxDispatcher({ store, channels, clock, random: () => 0, id: 'dsp_test', options: { retry: { initialMs: 100, maxMs: 10_000, jitter: 'none' }, ...options } });
  const enqueue: Setup['enqueue'] = (item, text = 'Hello from Spine') =>
    store.outbox.enqueue({ idempotencyKey: `test:${++n}`, runId: null, taskId: null, payload: { text }, ...item }, clock.now());
  return { store, clock, dispatcher, enqueue };
}

async function auditOf(store: Store, outboxId: string): Promise<AuditEvent[]> {
  const all = await store.audit.list({ limit: 10_000 });
  return all.filter((e) => (e.data as { outbox?: string } | null)?.outbox === outboxId);
}

const kinds = (events: AuditEvent[]) => events.map((e) => `${e.kind}${e.kind === 'outbox.attempt' ? ':' + (e.data as { outcome: string }).outcome : ''}`);

describe('outbox: each platform’s API shape', () => {
  it('slack: chat.postMessage with the bot token, in the thread', async (t) => {
    const { store, dispatcher, enqueue } = await setup(t);
    const item = await enqueue({ channel: 'slack', account: 'T123ABC456', target: { channel: 'C123ABC456', thread_ts: '1355517523.000005' } });
    assert.equal(await dispatcher.dispatchOnce(), 1);
    assert.equal(platform.received.length, 1);
    const req = platform.received[0]!;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/slack/api/chat.postMessage');
    assert.equal(req.headers.authorization, `Bearer ${SLACK_TOKEN}`);
    assert.match(String(req.headers['content-type']), /^application\/json/);
    assert.deepEqual(req.body, { channel: 'C123ABC456', text: 'Hello from Spine', thread_ts: '1355517523.000005' });
    const sent = (await store.outbox.get(item.id))!;
    assert.equal(sent.state, 'sent');
    assert.equal(sent.attempts, 1);
    assert.equal((sent.response as { ok: boolean }).ok, true);
    assert.equal(sent.leaseOwner, null);
    assert.deepEqual(kinds(await auditOf(store, item.id)), ['outbox.enqueued', 'outbox.attempt:sent', 'outbox.sent']);
  });

  it('telegram: sendMessage as a reply, in the forum topic', async (t) => {
    const { store, dispatcher, enqueue } = await setup(t);
    const item = await enqueue({ channel: 'telegram', account: 'mybot', target: { chat_id: -1001234567890, message_thread_id: 7, reply_to_message_id: 1365 } });
    await dispatcher.dispatchOnce();
    const req = platform.received[0]!;
    assert.equal(req.url, `/telegram/bot${TELEGRAM_TOKEN}/sendMessage`);
    assert.deepEqual(req.body, {
      chat_id: -1001234567890,
      text: 'Hello from Spine',
      message_thread_id: 7,
      reply_parameters: { message_id: 1365, allow_sending_without_reply: true },
    });
    assert.equal((await store.outbox.get(item.id))!.state, 'sent');
  });

  it('discord: edits the deferred original response; falls back to the channel when the token expired', async (t) => {
    const { store, dispatcher, enqueue } = await setup(t);
    const target = { application_id: DISCORD_APP, interaction_token: 'A_UNIQUE_TOKEN', channel_id: '645027906669510667' };
    const item = await enqueue({ channel: 'discord', account: 'app1', target });
    await dispatcher.dispatchOnce();
    assert.equal(platform.received[0]!.method, 'PATCH');
    assert.equal(platform.received[0]!.url, `/discord/api/v10/webhooks/${DISCORD_APP}/A_UNIQUE_TOKEN/messages/@original`);
    assert.equal(platform.received[0]!.headers.authorization, undefined);
    assert.deepEqual(platform.received[0]!.body, { content: 'Hello from Spine', allowed_mentions: { parse: [] } });
    assert.equal((await store.outbox.get(item.id))!.state, 'sent');

    platform.received.length = 0;
    platform.respond = (req) => (req.method === 'PATCH' ? { status: 401, body: { message: 'Invalid Webhook Token', code: 50027 } } : defaultReply(req));
    const late = await enqueue({ channel: 'discord', account: 'app1', target }, 'Sorry for the wait');
    await dispatcher.dispatchOnce();
    assert.deepEqual(
      platform.received.map((r) => `${r.method} ${r.url}`),
      [`PATCH /discord/api/v10/webhooks/${DISCORD_APP}/A_UNIQUE_TOKEN/messages/@original`, 'POST /discord/api/v10/channels/645027906669510667/messages'],
    );
    assert.equal(platform.received[1]!.headers.authorization, `Bot ${DISCORD_BOT}`);
    assert.deepEqual(platform.received[1]!.body, { content: 'Sorry for the wait', allowed_mentions: { parse: [] } });
    assert.equal((await store.outbox.get(late.id))!.state, 'sent');
  });

  it('webhook: POSTs the reply to replyUrl, signed with the account secret', async (t) => {
    const { store, dispatcher, enqueue } = await setup(t);
    const item = await enqueue({ channel: 'webhook', account: 'github', target: { inReplyTo: 'webhook:github:abc' } });
    await dispatcher.dispatchOnce();
    const req = platform.received[0]!;
    assert.equal(req.url, '/hooks/reply');
    assert.deepEqual(req.body, { text: 'Hello from Spine', inReplyTo: 'webhook:github:abc', runId: null, idempotencyKey: item.idempotencyKey });
    const expected = 'sha256=' + createHmac('sha256', WEBHOOK_SECRET).update(JSON.stringify(req.body)).digest('hex');
    assert.equal(req.headers['x-hub-signature-256'], expected);
    assert.equal((await store.outbox.get(item.id))!.state, 'sent');
  });

  it('agents’ deliver targets {to, thread} work on every chat platform', async (t) => {
    const { store, dispatcher, enqueue } = await setup(t);
    const items = [
      await enqueue({ channel: 'slack', account: 'T123ABC456', target: { to: 'C999', thread: '1.2' } }),
      await enqueue({ channel: 'telegram', account: 'mybot', target: { to: '-100777', thread: '3' } }),
      await enqueue({ channel: 'discord', account: 'app1', target: { to: '645027906669510667' } }),
    ];
    await dispatcher.dispatchOnce();
    const byUrl = new Map(platform.received.map((r) => [r.url, r.body]));
    assert.deepEqual(byUrl.get('/slack/api/chat.postMessage'), { channel: 'C999', text: 'Hello from Spine', thread_ts: '1.2' });
    assert.deepEqual(byUrl.get(`/telegram/bot${TELEGRAM_TOKEN}/sendMessage`), { chat_id: '-100777', text: 'Hello from Spine', message_thread_id: 3 });
    assert.deepEqual(byUrl.get('/discord/api/v10/channels/645027906669510667/messages'), { content: 'Hello from Spine', allowed_mentions: { parse: [] } });
    for (const i of items) assert.equal((await store.outbox.get(i.id))!.state, 'sent');
  });
});

describe('outbox: retries', () => {
  it('a 429 with Retry-After waits at least that long, then succeeds (slack header, telegram and discord bodies)', async (t) => {
    const { store, clock, dispatcher, enqueue } = await setup(t);
    const limited = new Set<string>();
    platform.respond = (req) => {
      const key = req.url.split('/')[1]!;
      if (limited.has(key)) return defaultReply(req);
      limited.add(key);
      if (key === 'slack') return { status: 429, headers: { 'retry-after': '3' }, body: { ok: false, error: 'ratelimited' } };
      if (key === 'telegram') return { status: 429, body: { ok: false, error_code: 429, description: 'Too Many Requests: retry after 2', parameters: { retry_after: 2 } } };
      return { status: 429, headers: { 'retry-after': '2' }, body: { message: 'You are being rate limited.', retry_after: 1.5, global: false } };
    };
    const t0 = clock.now();
    const slack = await enqueue({ channel: 'slack', account: 'T123ABC456', target: { channel: 'C1' } });
    const tg = await enqueue({ channel: 'telegram', account: 'mybot', target: { chat_id: 1 } });
    const dc = await enqueue({ channel: 'discord', account: 'app1', target: { application_id: DISCORD_APP, interaction_token: 'tok' } });
    assert.equal(await dispatcher.dispatchOnce(), 3);
    assert.equal((await store.outbox.get(slack.id))!.nextAttemptAt, t0 + 3000);
    assert.equal((await store.outbox.get(tg.id))!.nextAttemptAt, t0 + 2000);
    assert.equal((await store.outbox.get(dc.id))!.nextAttemptAt, t0 + 1500);
    assert.equal(await store.outbox.nextDue(), t0 + 1500);

    clock.advance(1499);
    assert.equal(await dispatcher.dispatchOnce(), 0, 'nothing is due before Retry-After');
    clock.advance(1);
    assert.equal(await dispatcher.dispatchOnce(), 1);
    clock.advance(1500);
    assert.equal(await dispatcher.dispatchOnce(), 2);
    for (const i of [slack, tg, dc]) {
      const final = (await store.outbox.get(i.id))!;
      assert.equal(final.state, 'sent');
      assert.equal(final.attempts, 2);
      const events = await auditOf(store, i.id);
      assert.deepEqual(kinds(events), ['outbox.enqueued', 'outbox.attempt:retry', 'outbox.attempt:sent', 'outbox.sent']);
      const retry = events[1]!.data as { status: number; retryAfterMs: number; error: { retryable: boolean } };
      assert.equal(retry.status, 429);
      assert.equal(retry.error.retryable, true);
    }
    assert.equal(platform.received.length, 6);
  });

  it('a 500 is retried with exponential backoff, then succeeds', async (t) => {
    const { store, clock, dispatcher, enqueue } = await setup(t);
    let calls = 0;
    platform.respond = (req) => (++calls <= 2 ? { status: 500, body: { ok: false, error_code: 500, description: 'Internal Server Error' } } : defaultReply(req));
    const item = await enqueue({ channel: 'telegram', account: 'mybot', target: { chat_id: 1 } });
    const t0 = clock.now();
    await dispatcher.dispatchOnce();
    assert.equal((await store.outbox.get(item.id))!.nextAttemptAt, t0 + 100);
    clock.advance(100);
    await dispatcher.dispatchOnce();
    assert.equal((await store.outbox.get(item.id))!.nextAttemptAt, t0 + 100 + 200, 'backoff doubles');
    clock.advance(200);
    await dispatcher.dispatchOnce();
    const final = (await store.outbox.get(item.id))!;
    assert.equal(final.state, 'sent');
    assert.equal(final.attempts, 3);
    assert.deepEqual(kinds(await auditOf(store, item.id)), ['outbox.enqueued', 'outbox.attempt:retry', 'outbox.attempt:retry', 'outbox.attempt:sent', 'outbox.sent']);
  });

  it('a 400 (or a permanent platform error) is dead at once', async (t) => {
    const { store, dispatcher, enqueue } = await setup(t);
    platform.respond = (req) => {
      if (req.url.includes('/slack/')) return { status: 200, body: { ok: false, error: 'channel_not_found' } };
      if (req.url.includes('/telegram/')) return { status: 400, body: { ok: false, error_code: 400, description: 'Bad Request: chat not found' } };
      return { status: 400, body: { message: 'Invalid Form Body', code: 50035 } };
    };
    const items = [
      await enqueue({ channel: 'slack', account: 'T123ABC456', target: { channel: 'C404' } }),
      await enqueue({ channel: 'telegram', account: 'mybot', target: { chat_id: 404 } }),
      await enqueue({ channel: 'discord', account: 'app1', target: { application_id: DISCORD_APP, interaction_token: 'tok' } }),
    ];
    await dispatcher.dispatchOnce();
    const errors: string[] = [];
    for (const i of items) {
      const final = (await store.outbox.get(i.id))!;
      assert.equal(final.state, 'dead');
      assert.equal(final.attempts, 1);
      errors.push((final.lastError as { message: string }).message);
      const events = await auditOf(store, i.id);
      assert.deepEqual(kinds(events), ['outbox.enqueued', 'outbox.attempt:dead', 'outbox.dead']);
      assert.equal((events[2]!.data as { reason: string }).reason, 'not retryable');
    }
    assert.deepEqual(errors, ['chat.postMessage: channel_not_found', 'sendMessage: Bad Request: chat not found', 'edit original response: Invalid Form Body (code 50035)']);
    assert.equal(await store.outbox.nextDue(), null);
  });

  it('slack’s 200 {ok:false, error:"ratelimited"} is retryable', async (t) => {
    const { store, dispatcher, enqueue } = await setup(t);
    platform.respond = () => ({ status: 200, body: { ok: false, error: 'ratelimited' } });
    const item = await enqueue({ channel: 'slack', account: 'T123ABC456', target: { channel: 'C1' } });
    await dispatcher.dispatchOnce();
    const after1 = (await store.outbox.get(item.id))!;
    assert.equal(after1.state, 'pending');
    assert.equal((after1.lastError as { retryable: boolean }).retryable, true);
  });

  it('gives up after maxAttempts and audits every attempt', async (t) => {
    const { store, clock, dispatcher, enqueue } = await setup(t, { maxAttempts: 3 });
    platform.respond = () => ({ status: 503, body: { ok: false, error: 'service_unavailable' } });
    const item = await enqueue({ channel: 'slack', account: 'T123ABC456', target: { channel: 'C1' } });
    for (let i = 0; i < 5; i++) {
      await dispatcher.dispatchOnce();
      clock.advance(10_000);
    }
    const final = (await store.outbox.get(item.id))!;
    assert.equal(final.state, 'dead');
    assert.equal(final.attempts, 3);
    assert.equal(platform.received.length, 3);
    const events = await auditOf(store, item.id);
    assert.deepEqual(kinds(events), ['outbox.enqueued', 'outbox.attempt:retry', 'outbox.attempt:retry', 'outbox.attempt:dead', 'outbox.dead']);
    assert.equal((events.at(-1)!.data as { reason: string }).reason, 'attempts exhausted (3)');
    assert.ok(events.every((e) => e.kind === 'outbox.enqueued' || e.actor === 'dsp_test'));

    // An operator can put it back.
    platform.respond = defaultReply;
    await store.outbox.requeue(item.id, 'ops', clock.now());
    await dispatcher.dispatchOnce();
    assert.equal((await store.outbox.get(item.id))!.state, 'sent');
  });

  it('a network failure is retryable; an unconfigured channel is dead', async (t) => {
    const { store, dispatcher, enqueue } = await setup(t);
    const broken = new OutboxDispatcher({ store, channels, fetch: () => Promise.reject(new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED') })), clock: new ManualClock(Date.UTC(2026, 4, 1)) });
    const item = await enqueue({ channel: 'slack', account: 'T123ABC456', target: { channel: 'C1' } });
    await broken.dispatchOnce();
    const after1 = (await store.outbox.get(item.id))!;
    assert.equal(after1.state, 'pending');
    assert.match((after1.lastError as { message: string }).message, /fetch failed: connect ECONNREFUSED/);

    const lost = await enqueue({ channel: 'matrix', account: 'x', target: { to: 'room' } });
    await dispatcher.dispatchOnce();
    assert.equal((await store.outbox.get(lost.id))!.state, 'dead');
  });

  it('a channel whose {env} bot token is unset: its reply is dead at once (SECRET_UNSET, not retried), nothing sent', async (t) => {
    const { store, enqueue } = await setup(t);
    const unset = createChannels(
      compileChannels({ slack: { accounts: { T123ABC456: { signingSecret: 's', botToken: { env: 'T_UNSET_BOT' }, apiBaseUrl: `${platform.url}/slack/api` } } } }, [], {}),
    );
    const dispatcher = new OutboxDispatcher({ store, channels: unset, clock: new ManualClock(Date.UTC(2026, 4, 1)) });
    const item = await enqueue({ channel: 'slack', account: 'T123ABC456', target: { channel: 'C1' } });
    await dispatcher.dispatchOnce();
    const dead = (await store.outbox.get(item.id))!;
    assert.equal(dead.state, 'dead');
    assert.equal(dead.attempts, 1);
    assert.match((dead.lastError as { message: string }).message, /channels\.slack\.accounts\.T123ABC456\.botToken: environment variable T_UNSET_BOT is not set/);
    assert.equal(platform.received.length, 0);
  });
});

describe('outbox: leases', () => {
  it('a lost lease fences a late outcome; an item whose dispatcher died is retried, and dead when attempts are spent', async (t) => {
    const { store, clock, dispatcher, enqueue } = await setup(t, { maxAttempts: 2, leaseMs: 1_000, timeoutMs: 100, batch: 1 });
    const item = await enqueue({ channel: 'slack', account: 'T123ABC456', target: { channel: 'C1' } });
    const [ghost] = await store.outbox.lease({ owner: 'ghost', limit: 10, leaseMs: 1_000, now: clock.now() });
    assert.equal(ghost!.attempts, 1);
    assert.equal(await dispatcher.dispatchOnce(), 0, 'held by another dispatcher');
    clock.advance(dispatcher.options.leaseMs);
    // The ghost's lease expired: this dispatcher takes over (attempt 2) and sends.
    assert.equal(await dispatcher.dispatchOnce(), 1);
    assert.equal((await store.outbox.get(item.id))!.state, 'sent');
    assert.equal(await store.outbox.complete({ id: item.id, owner: 'ghost', attempt: 1 }, null, clock.now(), []), false);
    assert.ok((await store.audit.list({ limit: 1000 })).some((e) => e.kind === 'outbox.lease-lost'));

    // Last attempt's dispatcher died: no attempts left, so dead without sending again.
    const doomed = await enqueue({ channel: 'slack', account: 'T123ABC456', target: { channel: 'C2' } });
    await store.outbox.lease({ owner: 'ghost', limit: 1, leaseMs: 1_000, now: clock.now() });
    clock.advance(dispatcher.options.leaseMs);
    await store.outbox.lease({ owner: 'ghost', limit: 1, leaseMs: 1_000, now: clock.now() });
    clock.advance(dispatcher.options.leaseMs);
    platform.received.length = 0;
    await dispatcher.dispatchOnce();
    const final = (await store.outbox.get(doomed.id))!;
    assert.equal(final.state, 'dead');
    assert.equal((final.lastError as { code: string }).code, 'OUTBOX_ATTEMPTS_EXHAUSTED');
    assert.equal(platform.received.length, 0);
  });

  it('two dispatchers (two connections to one database) racing never send an item twice', async (t) => {
    const { store, url, cleanup } = await tempStore();
    const other = openStore({ url, durability: 'fast' });
    t.after(async () => {
      await other.close();
      await cleanup();
    });
    const seen = new Map<string, number>();
    platform.respond = (req: Received) => {
      const text = (req.body as { text: string }).text;
      seen.set(text, (seen.get(text) ?? 0) + 1);
      return defaultReply(req);
    };
    const N = 60;
    for (let i = 0; i < N; i++) {
      await store.outbox.enqueue({ idempotencyKey: `race:${i}`, runId: null, taskId: null, channel: 'slack', account: 'T123ABC456', target: { channel: `C${i % 7}` }, payload: { text: `m${i}` } }, Date.now());
    }
    const a = new OutboxDispatcher({ store, channels, options: { batch: 4, pollMs: 20 } });
    const b = new OutboxDispatcher({ store: other, channels, options: { batch: 4, pollMs: 20 } });
    await Promise.all([a.start(), b.start()]);
    try {
      await until('all sent', async () => (await store.outbox.list({ state: 'sent', limit: 1000 })).length === N, 10_000);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    assert.equal(seen.size, N);
    assert.deepEqual([...seen.values()].filter((c) => c !== 1), []);
    const attempts = (await store.audit.list({ limit: 10_000 })).filter((e) => e.kind === 'outbox.attempt');
    assert.equal(attempts.length, N);
    assert.equal(new Set(attempts.map((e) => (e.data as { outbox: string }).outbox)).size, N);

    // The lease itself, hammered from both connections at once: every item goes to exactly one caller.
    for (let i = 0; i < 200; i++) {
      await store.outbox.enqueue({ idempotencyKey: `lease:${i}`, runId: null, taskId: null, channel: 'slack', account: 'T123ABC456', target: { channel: 'C' }, payload: { text: 'x' } }, 0);
    }
    const now = Date.now();
    const batches = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? store : other).outbox.lease({ owner: `o${i}`, limit: 10, leaseMs: 60_000, now })));
    const ids = batches.flat().map((x) => x.id);
    assert.equal(ids.length, 200);
    assert.equal(new Set(ids).size, 200);
  });

  it('start() wakes on a new item without waiting for the poll', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    // On a manual clock that never moves, the dispatcher's poll never comes: only a wake-up can send the item.
    const clock = new ManualClock(Date.now());
    const d = new OutboxDispatcher({ store, channels, clock, options: { pollMs: 60_000 } });
    await d.start();
    t.after(() => d.stop());
    await clock.waitForTimers(1); // asleep after its first look
    const item = await store.outbox.enqueue({ idempotencyKey: 'wake', runId: null, taskId: null, channel: 'slack', account: 'T123ABC456', target: { channel: 'C1' }, payload: 'plain text payload' }, clock.now());
    await until('sent', async () => (await store.outbox.get(item.id))!.state === 'sent', 30_000);
    assert.equal((platform.received.at(-1)!.body as { text: string }).text, 'plain text payload');
  });
});

describe('outbox: replies to channel messages', () => {
  async function harness(t: { after: (fn: () => Promise<void>) => void }, agent: (text: string) => Json, rules: unknown[] = []) {
    const { store, cleanup } = await tempStore();
    const policyIssues: FieldIssue[] = [];
    const policy = compilePolicy(policySchema.parse({ rules }), policyIssues);
    assert.deepEqual(policyIssues, []);
    const reg = registry({ echo: (input) => ({ output: agent((input.task.input as { text: string }).text) }) }, {}, { policy });
    const issues: FieldIssue[] = [];
    const intake = new Intake(store, reg, { bindings: compileBindings([{ agent: 'echo' }], ['echo'], issues), sessions: compileSessions(undefined, issues) }, systemClock);
    assert.deepEqual(issues, []);
    const worker = await startWorker(store, reg);
    const dispatcher = new OutboxDispatcher({ store, channels, options: { pollMs: 50 } });
    await dispatcher.start();
    t.after(async () => {
      await dispatcher.stop();
      await worker.stop();
      await cleanup();
    });
    return { store, intake };
  }

  it('a slack message’s run succeeds → exactly one reply, posted in its thread', async (t) => {
    const { store, intake } = await harness(t, (text) => `You said: ${text}`);
    const raw = JSON.stringify(slackMessage({ thread_ts: '1355517500.000001' }));
    const r = await channels.get('slack')!.receive({ account: 'T123ABC456', headers: slackHeaders(raw, Date.now()), rawBody: raw, now: Date.now() });
    assert.equal(r.kind, 'envelope');
    const accepted = await intake.accept((r as { envelope: Parameters<Intake['accept']>[0] }).envelope, { actor: 'channel:slack' });
    const run = await finished(store, accepted.run!.id);
    assert.equal(run.state, 'succeeded');
    const items = await store.outbox.list({ runId: run.id, limit: 10 });
    assert.equal(items.length, 1);
    assert.equal(items[0]!.idempotencyKey, `reply:${run.id}`);
    await until('reply sent', async () => (await store.outbox.get(items[0]!.id))!.state === 'sent');
    const posts = platform.received.filter((p) => p.url === '/slack/api/chat.postMessage');
    assert.equal(posts.length, 1);
    assert.deepEqual(posts[0]!.body, { channel: 'C123ABC456', text: 'You said: Hello world', thread_ts: '1355517500.000001' });
    // Queued in the commit that finished the run.
    const events = await store.audit.list({ runId: run.id, limit: 1000 });
    const succeeded = events.find((e) => e.kind === 'run.succeeded')!;
    const enqueued = events.find((e) => e.kind === 'outbox.enqueued')!;
    assert.equal(enqueued.at, succeeded.at);
    assert.equal(items[0]!.createdAt, run.finishedAt);
    assert.ok(events.some((e) => e.kind === 'outbox.sent'));

    // The same event again (Slack retries) is deduplicated: no second run, no second reply.
    const again = await intake.accept((r as { envelope: Parameters<Intake['accept']>[0] }).envelope, { actor: 'channel:slack' });
    assert.equal(again.created, false);
    assert.equal((await store.outbox.list({ limit: 10 })).length, 1);
  });

  it('a reply crosses the boundary like any outbound message: a channel the allowlist denies gets nothing, and the refusal is audited', async (t) => {
    const { store, intake } = await harness(t, (text) => `You said: ${text}`, [
      { id: 'only-ops-channel', kind: 'allowlist', actions: ['deliver:slack:*'], fields: ['to'], allow: ['C0OPS'] },
    ]);
    const raw = JSON.stringify(slackMessage({}));
    const r = await channels.get('slack')!.receive({ account: 'T123ABC456', headers: slackHeaders(raw, Date.now()), rawBody: raw, now: Date.now() });
    const accepted = await intake.accept((r as { envelope: Parameters<Intake['accept']>[0] }).envelope, { actor: 'channel:slack' });
    const run = await finished(store, accepted.run!.id);
    assert.equal(run.state, 'succeeded', 'the run did its work; only the reply was refused');
    assert.deepEqual(await store.outbox.list({ runId: run.id, limit: 10 }), [], 'no outbox row for a denied reply');
    const events = await store.audit.list({ runId: run.id, limit: 1000 });
    const decision = events.find((e) => e.kind === 'policy.decision');
    assert.ok(decision, 'the policy decision is audited');
    assert.deepEqual([(decision.data as { action: string }).action, (decision.data as { effect: string }).effect], ['deliver:slack:C123ABC456', 'deny']);
    assert.ok(events.some((e) => e.kind === 'reply.refused'));
  });

  it('a reply an approval tier holds waits for the human, then is queued once, without asking the agent again', async (t) => {
    let turns = 0;
    const { store, intake } = await harness(
      t,
      (text) => (turns++, `You said: ${text}`),
      [{ id: 'replies-need-ok', kind: 'approval', actions: ['deliver:slack:*'], tier: 'approve' }],
    );
    const raw = JSON.stringify(slackMessage({}));
    const r = await channels.get('slack')!.receive({ account: 'T123ABC456', headers: slackHeaders(raw, Date.now()), rawBody: raw, now: Date.now() });
    const accepted = await intake.accept((r as { envelope: Parameters<Intake['accept']>[0] }).envelope, { actor: 'channel:slack' });
    await until('approval requested', async () => (await store.approvals.list({ state: 'pending', runId: accepted.run!.id, limit: 10 })).length === 1);
    assert.deepEqual(await store.outbox.list({ runId: accepted.run!.id, limit: 10 }), []);
    const [approval] = await store.approvals.list({ state: 'pending', runId: accepted.run!.id, limit: 10 });
    await store.approvals.decide(approval!.id, { approve: true, actor: 'alice' }, Date.now());
    const run = await finished(store, accepted.run!.id);
    assert.equal(run.state, 'succeeded');
    assert.equal(turns, 1, 'the decided output was replayed, not asked for again');
    const items = await store.outbox.list({ runId: run.id, limit: 10 });
    assert.equal(items.length, 1);
    assert.equal(items[0]!.idempotencyKey, `reply:${run.id}`);
  });

  it('telegram and discord replies use their reply targets; an output object’s text is sent', async (t) => {
    const { store, intake } = await harness(t, (text) => ({ text: `answer to ${text}`, confidence: 0.9 }));
    const tgRaw = JSON.stringify(telegramUpdate({ text: 'ping' }));
    const tg = await channels.get('telegram')!.receive({ account: 'mybot', headers: telegramHeaders(), rawBody: tgRaw, now: Date.now() });
    const dcRaw = JSON.stringify(discordCommand());
    const dc = await channels.get('discord')!.receive({ account: 'app1', headers: discordHeaders(dcRaw, Date.now(), keys.privateKey), rawBody: dcRaw, now: Date.now() });
    const runs = [];
    for (const r of [tg, dc]) {
      assert.equal(r.kind, 'envelope');
      runs.push((await intake.accept((r as { envelope: Parameters<Intake['accept']>[0] }).envelope, { actor: 'test' })).run!.id);
    }
    for (const id of runs) await finished(store, id);
    await until('both sent', async () => (await store.outbox.list({ state: 'sent', limit: 10 })).length === 2);
    const tgPost = platform.received.find((p) => p.url.endsWith('/sendMessage'))!;
    assert.deepEqual(tgPost.body, { chat_id: 1111111, text: 'answer to ping', reply_parameters: { message_id: 1365, allow_sending_without_reply: true } });
    const dcPatch = platform.received.find((p) => p.method === 'PATCH')!;
    assert.equal(dcPatch.url, `/discord/api/v10/webhooks/${DISCORD_APP}/A_UNIQUE_TOKEN/messages/@original`);
    assert.deepEqual(dcPatch.body, { content: 'answer to /ask question:What is the capital of France? private:false', allowed_mentions: { parse: [] } });
  });

  it('no reply without replyTo, for an empty output, or for a failed run; other outputs are sent as JSON', async (t) => {
    const { store, intake } = await harness(t, (text) => {
      if (text === 'fail') throw new Error('boom');
      return text === 'quiet' ? '' : { n: 1 };
    });
    const base = { channel: 'api', account: 'default', peer: { kind: 'dm' as const, id: 'u1' }, parentPeer: null, sender: null, thread: null, data: null };
    const noReply = await intake.accept({ ...base, text: 'hello', idempotencyKey: 'k1', replyTo: null }, { actor: 'test' });
    const quiet = await intake.accept({ ...base, text: 'quiet', idempotencyKey: 'k2', replyTo: { channel: 'C1' }, channel: 'slack', account: 'T123ABC456' }, { actor: 'test' });
    const json = await intake.accept({ ...base, text: 'json', idempotencyKey: 'k3', replyTo: { channel: 'C1' }, channel: 'slack', account: 'T123ABC456' }, { actor: 'test' });
    const failed = await intake.accept({ ...base, text: 'fail', idempotencyKey: 'k4', replyTo: { channel: 'C1' }, channel: 'slack', account: 'T123ABC456' }, { actor: 'test' });
    for (const a of [noReply, quiet, json]) assert.equal((await finished(store, a.run!.id)).state, 'succeeded');
    assert.equal((await finished(store, failed.run!.id)).state, 'failed');
    const items = await store.outbox.list({ limit: 10 });
    assert.deepEqual(items.map((i) => [i.runId, i.payload]), [[json.run!.id, { text: '{"n":1}' }]]);
  });
});
