// The real channel adapters behind the real gateway (loopback port): each platform's
// signed, documented payload is stored and routed before the ack, handshakes and bad
// signatures store nothing, and the run's reply goes out through the outbox to a
// fake platform.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { OutboxDispatcher } from '../src/engine/outbox-dispatcher.ts';
import { createChannels } from '../src/channels/index.ts';
import { compileChannels } from '../src/channels/config.ts';
import type { FieldIssue } from '../src/core/errors.ts';
import type { ChannelAdapter } from '../src/core/channel.ts';
import {
  FakePlatform,
  TELEGRAM_SECRET,
  channelSettings,
  discordCommand,
  discordHeaders,
  discordKeys,
  discordPing,
  githubHeaders,
  githubPush,
  slackHeaders,
  slackMessage,
  slackUrlVerification,
  telegramHeaders,
  telegramUpdate,
} from './fixtures/channels.ts';
import { startTestGateway, stored, type TestGateway } from './fixtures/gateway-setup.ts';
import { finished, registry, until } from './helpers.ts';

const keys = discordKeys();
const platform = new FakePlatform();
let channels: ReadonlyMap<string, ChannelAdapter>;

before(async () => {
  await platform.start();
  channels = createChannels(channelSettings({ apiBase: platform.url, discordPublicKey: keys.publicKeyHex }));
});
after(() => platform.close());

const echo = registry({ echo: (input) => ({ output: `echo: ${(input.task.input as { text: string }).text}` }) });

function gateway(t: Parameters<typeof startTestGateway>[0]): Promise<TestGateway> {
  return startTestGateway(t, { channels, reg: echo, bindings: [{ id: 'all', agent: 'echo' }] });
}

function post(g: TestGateway, path: string, raw: string, headers: Headers) {
  return g.call('POST', path, { token: null, body: raw, headers: Object.fromEntries(headers.entries()) });
}

describe('channels through the gateway', () => {
  it('slack: url_verification answered, a signed message stored and routed, bad signatures 401 with nothing stored', async (t) => {
    const g = await gateway(t);
    const now = Date.now();
    const challenge = JSON.stringify(slackUrlVerification);
    const hello = await post(g, '/v1/channels/slack/T123ABC456', challenge, slackHeaders(challenge, now));
    assert.equal(hello.status, 200);
    assert.deepEqual(hello.body, { challenge: slackUrlVerification.challenge });

    const raw = JSON.stringify(slackMessage());
    for (const [what, headers, body] of [
      ['tampered', slackHeaders(raw, now), raw.replace('Hello', 'Howdy')],
      ['stale', slackHeaders(raw, now - 10 * 60_000), raw],
      ['wrong secret', slackHeaders(raw, now, 'nope'), raw],
      ['unsigned', new Headers({ 'content-type': 'application/json' }), raw],
    ] as const) {
      const r = await post(g, '/v1/channels/slack/T123ABC456', body, headers);
      assert.equal(r.status, 401, what);
      assert.equal((r.body as { error: { code: string } }).error.code, 'UNAUTHORIZED');
    }
    assert.deepEqual(await stored(g.store), { envelopes: 0, runs: 0 });

    const ok = await post(g, '/v1/channels/slack/T123ABC456', raw, slackHeaders(raw, now));
    assert.equal(ok.status, 200);
    const [env] = await g.store.envelopes.list({ limit: 5 });
    assert.equal(env!.channel, 'slack');
    assert.equal(env!.idempotencyKey, 'slack:T123ABC456:Ev123ABC456');
    assert.deepEqual(env!.replyTo, { channel: 'C123ABC456' });
    assert.equal(env!.state, 'routed');
    // Slack retries the same event: acknowledged, nothing new.
    assert.equal((await post(g, '/v1/channels/slack/T123ABC456', raw, slackHeaders(raw, now))).status, 200);
    assert.deepEqual(await stored(g.store), { envelopes: 1, runs: 1 });
  });

  it('telegram, discord and webhook: accepted with each platform’s ack; bad secrets store nothing', async (t) => {
    const g = await gateway(t);
    const now = Date.now();
    const ping = JSON.stringify(discordPing);
    const pong = await post(g, '/v1/channels/discord/app1', ping, discordHeaders(ping, now, keys.privateKey));
    assert.equal(pong.status, 200);
    assert.deepEqual(pong.body, { type: 1 });

    const tg = JSON.stringify(telegramUpdate());
    const cmd = JSON.stringify(discordCommand());
    const push = JSON.stringify(githubPush);
    assert.equal((await post(g, '/v1/channels/telegram/mybot', tg, telegramHeaders('wrong'))).status, 401);
    assert.equal((await post(g, '/v1/channels/discord/app1', cmd, discordHeaders(cmd, now, discordKeys().privateKey))).status, 401);
    assert.equal((await post(g, '/v1/channels/discord/app1', cmd, discordHeaders(cmd, now - 3_600_000, keys.privateKey))).status, 401);
    assert.equal((await post(g, '/v1/channels/webhook/github', push, githubHeaders(push, 'wrong'))).status, 401);
    assert.equal((await post(g, '/v1/channels/webhook/nobody', push, githubHeaders(push))).status, 401);
    assert.deepEqual(await stored(g.store), { envelopes: 0, runs: 0 });

    assert.equal((await post(g, '/v1/channels/telegram/mybot', tg, telegramHeaders())).status, 200);
    const deferred = await post(g, '/v1/channels/discord/app1', cmd, discordHeaders(cmd, now, keys.privateKey));
    assert.equal(deferred.status, 200);
    assert.deepEqual(deferred.body, { type: 5 });
    const hook = await post(g, '/v1/channels/webhook/github', push, githubHeaders(push));
    assert.equal(hook.status, 202);
    const envelopes = await g.store.envelopes.list({ limit: 10 });
    assert.deepEqual(envelopes.map((e) => e.channel).sort(), ['discord', 'telegram', 'webhook']);
    assert.ok(envelopes.every((e) => e.state === 'routed' && e.runId));
  });

  it('end to end: a signed Slack message → run → one reply through the outbox', async (t) => {
    const g = await gateway(t);
    await g.startWorker(echo);
    const dispatcher = new OutboxDispatcher({ store: g.store, channels, options: { pollMs: 50 } });
    await dispatcher.start();
    t.after(() => dispatcher.stop());
    const before = platform.received.length;
    const raw = JSON.stringify(slackMessage({ text: 'status?', ts: '1700000000.000100' }, { event_id: 'Ev0E2E' }));
    assert.equal((await post(g, '/v1/channels/slack/T123ABC456', raw, slackHeaders(raw, Date.now()))).status, 200);
    const [env] = await g.store.envelopes.list({ limit: 1 });
    await finished(g.store, env!.runId!);
    await until('reply sent', async () => (await g.store.outbox.list({ state: 'sent', limit: 5 })).length === 1);
    const posts = platform.received.slice(before);
    assert.equal(posts.length, 1);
    assert.equal(posts[0]!.url, '/slack/api/chat.postMessage');
    assert.deepEqual(posts[0]!.body, { channel: 'C123ABC456', text: 'echo: status?' });
  });
});

describe('a channel whose {env} secret is unset', () => {
  it('fails only that channel: its webhook is a 503 SECRET_UNSET naming the field, nothing stored; the others work', async (t) => {
    const issues: FieldIssue[] = [];
    const settings = compileChannels(
      {
        slack: { accounts: { T123ABC456: { signingSecret: { env: 'T_UNSET_SIGNING' }, botToken: 'xoxb-1', apiBaseUrl: `${platform.url}/slack/api` } } },
        telegram: channelSettingsRaw().telegram,
      },
      issues,
      {},
    );
    assert.deepEqual(issues, []);
    const g = await startTestGateway(t, { channels: createChannels(settings), reg: echo, bindings: [{ id: 'all', agent: 'echo' }] });
    const raw = JSON.stringify(slackMessage());
    const res = await post(g, '/v1/channels/slack/T123ABC456', raw, slackHeaders(raw, Date.now()));
    assert.equal(res.status, 503);
    assert.equal((res.body as unknown as { error: { code: string; message: string } }).error.code, 'SECRET_UNSET');
    assert.match((res.body as unknown as { error: { message: string } }).error.message, /^channels\.slack\.accounts\.T123ABC456\.signingSecret: environment variable T_UNSET_SIGNING is not set/);
    assert.equal(res.headers.get('retry-after'), null, 'not retryable');
    assert.deepEqual(await stored(g.store), { envelopes: 0, runs: 0 });
    const update = JSON.stringify(telegramUpdate());
    const ok = await post(g, '/v1/channels/telegram/mybot', update, telegramHeaders());
    assert.equal(ok.status, 200);
  });
});

function channelSettingsRaw() {
  return { telegram: { accounts: { mybot: { secretToken: TELEGRAM_SECRET, botToken: 'bot-token', apiBaseUrl: `${platform.url}/telegram` } } } };
}
