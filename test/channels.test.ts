import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FieldIssue } from '../src/core/errors.ts';
import { type ChannelAdapter, type InboundResult } from '../src/core/channel.ts';
import { BadChannelRequestError, SecretUnsetError, UnauthorizedRequestError } from '../src/core/errors.ts';
import { channelsSchema, compileChannels } from '../src/channels/config.ts';
import { createChannels } from '../src/channels/index.ts';
import {
  DISCORD_APP,
  GITHUB_DELIVERY,
  SLACK_SECRET,
  WEBHOOK_SECRET,
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
import { createHash, createHmac } from 'node:crypto';

const NOW = Date.UTC(2026, 4, 1, 12, 0, 0);
const keys = discordKeys();
const channels = createChannels(channelSettings({ discordPublicKey: keys.publicKeyHex }));
const adapter = (name: string): ChannelAdapter => channels.get(name)!;

function receive(name: string, account: string, body: unknown, headers: Headers | ((raw: string) => Headers), now = NOW): Promise<InboundResult> {
  const rawBody = typeof body === 'string' ? body : JSON.stringify(body);
  return adapter(name).receive({ account, headers: typeof headers === 'function' ? headers(rawBody) : headers, rawBody, now });
}

function envelopeOf(r: InboundResult) {
  assert.equal(r.kind, 'envelope', `expected an envelope, got ${JSON.stringify(r)}`);
  return r;
}

async function rejects401(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof UnauthorizedRequestError, `expected UnauthorizedRequestError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('channel config', () => {
  it('resolves secrets from the environment and fills defaults', () => {
    const s = channelSettings({ discordPublicKey: keys.publicKeyHex });
    assert.equal(s.slack.T123ABC456!.signingSecret, SLACK_SECRET);
    assert.equal(s.slack.T123ABC456!.toleranceSec, 300);
    assert.equal(s.webhook.github!.secret, WEBHOOK_SECRET);
    assert.equal(s.webhook.github!.signatureHeader, 'x-hub-signature-256');
    assert.equal(s.discord.app1!.applicationId, DISCORD_APP);
    assert.equal(s.outbox.maxAttempts, 8);
    assert.deepEqual([...channels.keys()].sort(), ['discord', 'slack', 'telegram', 'webhook']);
  });

  it('reads an {env} secret when it is used: unset, it fails only that channel, naming the field and the variable', async () => {
    const issues: FieldIssue[] = [];
    const env: NodeJS.ProcessEnv = {};
    const s = compileChannels({ slack: { accounts: { acme: { signingSecret: { env: 'NOPE_SIGNING' }, botToken: 'xoxb-1' } } } }, issues, env);
    assert.deepEqual(issues, [], 'compiling does not need the secret');
    assert.deepEqual(s.unset, [{ path: 'channels.slack.accounts.acme.signingSecret', message: 'environment variable NOPE_SIGNING is not set' }]);
    assert.equal(s.slack.acme!.botToken, 'xoxb-1');
    const slack = createChannels(s).get('slack')!;
    const ts = String(Math.floor(Date.now() / 1000));
    const req = { account: 'acme', headers: new Headers({ 'x-slack-request-timestamp': ts, 'x-slack-signature': 'v0=00' }), rawBody: '{}', now: Date.now() };
    await assert.rejects(
      async () => slack.receive(req),
      (err: unknown) => err instanceof SecretUnsetError && err.code === 'SECRET_UNSET' && err.status === 503 && !err.retryable && err.message === 'channels.slack.accounts.acme.signingSecret: environment variable NOPE_SIGNING is not set in this process',
    );
    // Set later (a test's env; a process's own environment does not change), it is read then.
    env.NOPE_SIGNING = 'now-set';
    assert.equal(s.slack.acme!.signingSecret, 'now-set');
  });

  it('is strict: unknown settings, bad keys, bad URLs and bad account names are refused', () => {
    const bad = [
      { slack: { accounts: { acme: { signingSecret: 'x', botToken: 'y', colour: 'red' } } } },
      { discord: { accounts: { app: { publicKey: 'abc', applicationId: '1' } } } },
      { telegram: { accounts: { bot: { secretToken: 'has spaces', botToken: 'x' } } } },
      { slack: { accounts: { acme: { signingSecret: 'x', botToken: 'y', apiBaseUrl: 'ftp://example.com' } } } },
      { webhook: { accounts: { 'a/b': { secret: 'x' } } } },
      { matrix: { accounts: {} } },
    ];
    for (const raw of bad) assert.equal(channelsSchema.safeParse(raw).success, false, JSON.stringify(raw));
    const issues: FieldIssue[] = [];
    compileChannels({ outbox: { initialMs: 5000, maxMs: 10 } }, issues, {});
    assert.deepEqual(issues.map((i) => i.path), ['channels.outbox.maxMs']);
  });

  it('has no adapter for a platform without accounts', () => {
    const s = compileChannels({ telegram: { accounts: { b: { secretToken: 'abc', botToken: 't' } } } }, [], {});
    assert.deepEqual([...createChannels(s).keys()], ['telegram']);
  });
});

describe('slack', () => {
  it('normalises a signed message event into an envelope', async () => {
    const r = envelopeOf(await receive('slack', 'T123ABC456', slackMessage({ thread_ts: '1355517500.000001' }), (raw) => slackHeaders(raw, NOW)));
    assert.deepEqual(r.ack, { status: 200, body: null });
    assert.deepEqual(r.envelope, {
      channel: 'slack',
      account: 'T123ABC456',
      peer: { kind: 'group', id: 'C123ABC456' },
      parentPeer: null,
      sender: { id: 'U123ABC456' },
      thread: '1355517500.000001',
      text: 'Hello world',
      data: { type: 'message', ts: '1355517523.000005', channelType: 'channel', team: 'T123ABC456', apiAppId: 'A123ABC456', eventTime: 1355517523, eventId: 'Ev123ABC456' },
      idempotencyKey: 'slack:T123ABC456:Ev123ABC456',
      replyTo: { channel: 'C123ABC456', thread_ts: '1355517500.000001' },
    });
  });

  it('maps im channels to dm peers, and replies outside a thread go to the channel', async () => {
    const r = envelopeOf(await receive('slack', 'T123ABC456', slackMessage({ channel: 'D024BE91L', channel_type: 'im' }), (raw) => slackHeaders(raw, NOW)));
    assert.deepEqual(r.envelope.peer, { kind: 'dm', id: 'D024BE91L' });
    assert.equal(r.envelope.thread, null);
    assert.deepEqual(r.envelope.replyTo, { channel: 'D024BE91L' });
  });

  it('answers url_verification with the challenge and stores nothing', async () => {
    const r = await receive('slack', 'T123ABC456', slackUrlVerification, (raw) => slackHeaders(raw, NOW));
    assert.deepEqual(r, { kind: 'respond', status: 200, body: { challenge: slackUrlVerification.challenge } });
  });

  it('ignores bot messages, edits and other events', async () => {
    for (const event of [{ bot_id: 'B123' }, { subtype: 'bot_message', bot_id: 'B1' }, { subtype: 'message_changed' }, { subtype: 'channel_join' }, { type: 'reaction_added' }]) {
      const r = await receive('slack', 'T123ABC456', slackMessage(event), (raw) => slackHeaders(raw, NOW));
      assert.equal(r.kind, 'ignore', JSON.stringify(event));
    }
  });

  it('refuses a tampered body, a stale timestamp, a wrong secret, a missing signature and an unknown account', async () => {
    const raw = JSON.stringify(slackMessage());
    const headers = slackHeaders(raw, NOW);
    await rejects401(receive('slack', 'T123ABC456', raw.replace('Hello world', 'Hello w0rld'), headers), /does not match/);
    await rejects401(receive('slack', 'T123ABC456', raw, slackHeaders(raw, NOW - 6 * 60_000)), /stale/);
    await rejects401(receive('slack', 'T123ABC456', raw, slackHeaders(raw, NOW + 6 * 60_000)), /stale/);
    await rejects401(receive('slack', 'T123ABC456', raw, slackHeaders(raw, NOW, 'not-the-secret')), /does not match/);
    await rejects401(receive('slack', 'T123ABC456', raw, new Headers({ 'x-slack-request-timestamp': String(NOW / 1000) })), /missing x-slack-signature/);
    await rejects401(receive('slack', 'TOTHER', raw, headers), /no slack account "TOTHER"/);
    // Within the tolerance is fine.
    assert.equal((await receive('slack', 'T123ABC456', raw, slackHeaders(raw, NOW - 4 * 60_000))).kind, 'envelope');
  });

  it('answers a signed non-JSON body with a bad request', async () => {
    await assert.rejects(
      receive('slack', 'T123ABC456', 'token=x&type=url_verification', (raw) => slackHeaders(raw, NOW)),
      BadChannelRequestError,
    );
  });
});

describe('telegram', () => {
  it('normalises a private message', async () => {
    const r = envelopeOf(await receive('telegram', 'mybot', telegramUpdate(), telegramHeaders()));
    assert.deepEqual(r.ack, { status: 200, body: null });
    assert.deepEqual(r.envelope, {
      channel: 'telegram',
      account: 'mybot',
      peer: { kind: 'dm', id: '1111111' },
      parentPeer: null,
      sender: { id: '1111111', name: 'Testuser' },
      thread: null,
      text: '/start',
      data: { updateId: 10000, messageId: 1365, date: 1441645532, chatType: 'private', chatTitle: null },
      idempotencyKey: 'telegram:mybot:10000',
      replyTo: { chat_id: 1111111, reply_to_message_id: 1365 },
    });
  });

  it('maps groups, forum topics and channel posts', async () => {
    const group = envelopeOf(
      await receive('telegram', 'mybot', telegramUpdate({ message_thread_id: 7, is_topic_message: true, text: 'hi all' }, { id: -1001234567890, title: 'Team', type: 'supergroup', is_forum: true }), telegramHeaders()),
    );
    assert.deepEqual(group.envelope.peer, { kind: 'group', id: '-1001234567890' });
    assert.equal(group.envelope.thread, '7');
    assert.deepEqual(group.envelope.replyTo, { chat_id: -1001234567890, message_thread_id: 7, reply_to_message_id: 1365 });

    const post = {
      update_id: 10001,
      channel_post: { message_id: 9, sender_chat: { id: -1009876543210, title: 'News', type: 'channel' }, chat: { id: -1009876543210, title: 'News', type: 'channel' }, date: 1441645600, text: 'Breaking' },
    };
    const ch = envelopeOf(await receive('telegram', 'mybot', post, telegramHeaders()));
    assert.deepEqual(ch.envelope.peer, { kind: 'channel', id: '-1009876543210' });
    assert.deepEqual(ch.envelope.sender, { id: '-1009876543210', name: 'News' });
    assert.equal(ch.envelope.idempotencyKey, 'telegram:mybot:10001');
  });

  it('ignores edits, service messages and bots', async () => {
    const edited = { update_id: 10002, edited_message: telegramUpdate().message };
    assert.equal((await receive('telegram', 'mybot', edited, telegramHeaders())).kind, 'ignore');
    const joined = telegramUpdate({ text: undefined, new_chat_members: [{ id: 5, is_bot: false, first_name: 'New' }] });
    assert.equal((await receive('telegram', 'mybot', joined, telegramHeaders())).kind, 'ignore');
    const bot = telegramUpdate({ from: { id: 42, is_bot: true, first_name: 'Other bot' } });
    assert.equal((await receive('telegram', 'mybot', bot, telegramHeaders())).kind, 'ignore');
  });

  it('refuses a wrong or missing secret token', async () => {
    await rejects401(receive('telegram', 'mybot', telegramUpdate(), telegramHeaders('tg_s3cret-Token_43')), /does not match/);
    await rejects401(receive('telegram', 'mybot', telegramUpdate(), telegramHeaders('tg_s3cret')), /does not match/);
    await rejects401(receive('telegram', 'mybot', telegramUpdate(), new Headers()), /missing/);
    await rejects401(receive('telegram', 'otherbot', telegramUpdate(), telegramHeaders()), /no telegram account/);
  });
});

describe('discord', () => {
  it('answers PING with PONG', async () => {
    const r = await receive('discord', 'app1', discordPing, (raw) => discordHeaders(raw, NOW, keys.privateKey));
    assert.deepEqual(r, { kind: 'respond', status: 200, body: { type: 1 } });
  });

  it('normalises a slash command and acks it with a deferred response', async () => {
    const r = envelopeOf(await receive('discord', 'app1', discordCommand(), (raw) => discordHeaders(raw, NOW, keys.privateKey)));
    assert.deepEqual(r.ack, { status: 200, body: { type: 5 } });
    assert.deepEqual(r.envelope, {
      channel: 'discord',
      account: 'app1',
      peer: { kind: 'group', id: '645027906669510667' },
      parentPeer: null,
      sender: { id: '53908232506183680', name: 'Mason', roles: ['290926798626357250', '780532519452368906'] },
      thread: null,
      text: '/ask question:What is the capital of France? private:false',
      data: {
        interactionId: '786008729715212338',
        command: 'ask',
        commandId: '771825006014889984',
        options: [
          { name: 'question', type: 3, value: 'What is the capital of France?' },
          { name: 'private', type: 5, value: false },
        ],
        guildId: '290926444748734465',
        locale: 'en-US',
      },
      idempotencyKey: 'discord:app1:786008729715212338',
      replyTo: { application_id: DISCORD_APP, interaction_token: 'A_UNIQUE_TOKEN', channel_id: '645027906669510667' },
    });
  });

  it('maps DMs, threads and subcommands', async () => {
    const dm = discordCommand({ guild_id: undefined, guild: undefined, member: undefined, context: 1, channel: { id: '111', type: 1 }, channel_id: '111', user: { id: '53908232506183680', username: 'mason', global_name: null, discriminator: '0' } });
    const d = envelopeOf(await receive('discord', 'app1', dm, (raw) => discordHeaders(raw, NOW, keys.privateKey)));
    assert.deepEqual(d.envelope.peer, { kind: 'dm', id: '111' });
    assert.deepEqual(d.envelope.sender, { id: '53908232506183680', name: 'mason' });

    const thread = discordCommand({
      channel: { id: '999', type: 11, parent_id: '645027906669510667', guild_id: '290926444748734465', name: 'a thread' },
      channel_id: '999',
      data: { id: '1', name: 'notes', type: 1, options: [{ name: 'add', type: 1, options: [{ name: 'text', type: 3, value: 'buy milk' }] }] },
    });
    const t = envelopeOf(await receive('discord', 'app1', thread, (raw) => discordHeaders(raw, NOW, keys.privateKey)));
    assert.deepEqual(t.envelope.peer, { kind: 'group', id: '999' });
    assert.equal(t.envelope.parentPeer, '645027906669510667');
    assert.equal(t.envelope.thread, '999');
    assert.equal(t.envelope.text, '/notes add text:buy milk');
  });

  it('acknowledges components and autocomplete without an envelope', async () => {
    const component = await receive('discord', 'app1', { ...discordCommand(), type: 3, data: { custom_id: 'x', component_type: 2 } }, (raw) => discordHeaders(raw, NOW, keys.privateKey));
    assert.deepEqual(component, { kind: 'ignore', status: 200, body: { type: 6 } });
    const auto = await receive('discord', 'app1', { ...discordCommand(), type: 4 }, (raw) => discordHeaders(raw, NOW, keys.privateKey));
    assert.deepEqual(auto, { kind: 'ignore', status: 200, body: { type: 8, data: { choices: [] } } });
  });

  it('refuses a tampered body, a stale timestamp, another key and a missing signature', async () => {
    const raw = JSON.stringify(discordCommand());
    const headers = discordHeaders(raw, NOW, keys.privateKey);
    await rejects401(receive('discord', 'app1', raw.replace('France', 'Spain'), headers), /does not verify/);
    await rejects401(receive('discord', 'app1', raw, discordHeaders(raw, NOW - 10 * 60_000, keys.privateKey)), /stale/);
    await rejects401(receive('discord', 'app1', raw, discordHeaders(raw, NOW, discordKeys().privateKey)), /does not verify/);
    await rejects401(receive('discord', 'app1', raw, new Headers({ 'x-signature-timestamp': String(NOW / 1000) })), /missing x-signature-ed25519/);
    const h = discordHeaders(raw, NOW, keys.privateKey);
    h.set('x-signature-ed25519', 'zz');
    await rejects401(receive('discord', 'app1', raw, h), /not a 64-byte/);
    const other = JSON.stringify(discordCommand({ application_id: '999' }));
    await rejects401(receive('discord', 'app1', other, discordHeaders(other, NOW, keys.privateKey)), /is for application 999/);
  });
});

describe('generic webhook', () => {
  it('normalises a signed GitHub push', async () => {
    const raw = JSON.stringify(githubPush);
    const r = envelopeOf(await receive('webhook', 'github', raw, githubHeaders(raw)));
    assert.deepEqual(r.ack, { status: 202, body: { accepted: true } });
    assert.deepEqual(r.envelope, {
      channel: 'webhook',
      account: 'github',
      peer: { kind: 'channel', id: 'github' },
      parentPeer: null,
      sender: null,
      thread: null,
      text: 'Fix all the bugs',
      data: { event: 'push', delivery: GITHUB_DELIVERY, payload: githubPush },
      idempotencyKey: `webhook:github:sha256:${createHash('sha256').update(raw).digest('hex')}`,
      replyTo: { inReplyTo: `webhook:github:sha256:${createHash('sha256').update(raw).digest('hex')}` },
    });
  });

  it('a captured request replayed with a new or missing delivery id is the same envelope (the id is not signed)', async () => {
    const raw = JSON.stringify(githubPush);
    const first = envelopeOf(await receive('webhook', 'github', raw, githubHeaders(raw))).envelope;
    const replayed = githubHeaders(raw);
    replayed.set('x-github-delivery', 'forged-new-delivery');
    assert.equal(envelopeOf(await receive('webhook', 'github', raw, replayed)).envelope.idempotencyKey, first.idempotencyKey);
    const stripped = githubHeaders(raw);
    stripped.delete('x-github-delivery');
    assert.equal(envelopeOf(await receive('webhook', 'github', raw, stripped)).envelope.idempotencyKey, first.idempotencyKey);
  });

  it('without a delivery id, dedupes by the body digest; without textField, the text is the body', async () => {
    const s = compileChannels({ webhook: { accounts: { ci: { secret: 's3', signatureHeader: 'X-Signature' } } } }, [], {});
    const hook = createChannels(s).get('webhook')!;
    const raw = '{"status":"green"}';
    const sig = createHmac('sha256', 's3').update(raw).digest('hex');
    const r = envelopeOf(await hook.receive({ account: 'ci', headers: new Headers({ 'x-signature': sig }), rawBody: raw, now: NOW }));
    assert.equal(r.envelope.idempotencyKey, `webhook:ci:sha256:${createHash('sha256').update(raw).digest('hex')}`);
    assert.equal(r.envelope.text, raw);
    assert.equal(r.envelope.replyTo, null);
  });

  it('with a timestamp header, signs `timestamp.body` and refuses stale requests', async () => {
    const s = compileChannels({ webhook: { accounts: { svc: { secret: 'k', signatureHeader: 'x-sig', timestampHeader: 'x-ts', toleranceSec: 60 } } } }, [], {});
    const hook = createChannels(s).get('webhook')!;
    const raw = '{"text":"deploy done"}';
    const at = (ms: number) => {
      const ts = String(Math.floor(ms / 1000));
      return new Headers({ 'x-ts': ts, 'x-sig': 'sha256=' + createHmac('sha256', 'k').update(`${ts}.${raw}`).digest('hex') });
    };
    assert.equal((await hook.receive({ account: 'svc', headers: at(NOW), rawBody: raw, now: NOW })).kind, 'envelope');
    await rejects401(hook.receive({ account: 'svc', headers: at(NOW - 120_000), rawBody: raw, now: NOW }), /stale/);
    const noTs = at(NOW);
    noTs.delete('x-ts');
    await rejects401(hook.receive({ account: 'svc', headers: noTs, rawBody: raw, now: NOW }), /missing x-ts/);
  });

  it('refuses a tampered body, a wrong secret and a missing signature', async () => {
    const raw = JSON.stringify(githubPush);
    await rejects401(receive('webhook', 'github', raw.replace('bugs', 'bugz'), githubHeaders(raw)), /does not match/);
    await rejects401(receive('webhook', 'github', raw, githubHeaders(raw, 'wrong secret')), /does not match/);
    await rejects401(receive('webhook', 'github', raw, new Headers({ 'x-github-event': 'push' })), /missing x-hub-signature-256/);
  });

  it('answers a signed body that is not a JSON object with a bad request', async () => {
    await assert.rejects(receive('webhook', 'github', '[1,2]', (raw) => githubHeaders(raw)), BadChannelRequestError);
  });
});
