import { verify, type KeyObject } from 'node:crypto';
import type { Json } from '../core/types.ts';
import type { OutboxItem } from '../store/outbox.ts';
import type { Envelope } from '../core/envelope.ts';
import { type ChannelAdapter, type InboundRequest, type InboundResult, type SendResult } from '../core/channel.ts';
import { BadChannelRequestError, UnauthorizedRequestError } from '../core/errors.ts';
import type { DiscordAccount } from './config.ts';
import { accountOf, callJson, checkTimestamp, ed25519PublicKey, httpFailure, isAnswer, isObject, parseObject, payloadText, requireHeader, str, truncate, type HttpAnswer } from './platform.ts';

/** Message content is limited to 2,000 characters. */
const MAX_TEXT = 2000;

/** Interaction types (https://discord.com/developers/docs/interactions/receiving-and-responding). */
const PING = 1;
const APPLICATION_COMMAND = 2;
const MESSAGE_COMPONENT = 3;
const AUTOCOMPLETE = 4;
/** Interaction callback types. */
const PONG = 1;
const DEFERRED_CHANNEL_MESSAGE = 5;
const DEFERRED_UPDATE_MESSAGE = 6;
const AUTOCOMPLETE_RESULT = 8;
/** Thread channel types: announcement, public and private threads. */
const THREAD_TYPES = new Set([10, 11, 12]);
/** Option types that nest further options. */
const SUB_COMMAND = 1;
const SUB_COMMAND_GROUP = 2;

/** Agents' text never pings @everyone, roles or users. */
const NO_MENTIONS = { parse: [] as Json[] };

/**
 * Discord interactions endpoint. Every request is signed with Ed25519 over
 * `X-Signature-Timestamp + body`, verified against the application's public key;
 * Discord checks that an endpoint refuses bad signatures, so anything unsigned is 401.
 *
 * PING is answered with PONG. An APPLICATION_COMMAND (slash command) becomes an
 * envelope, acknowledged at once with a deferred response ("thinking…"); the reply
 * then replaces it by editing the original response through the interaction's
 * webhook (valid for 15 minutes; after that, with a bot token, it is posted to the
 * channel instead).
 */
export class DiscordChannel implements ChannelAdapter {
  readonly name = 'discord';
  private readonly accounts: Record<string, DiscordAccount>;
  private readonly keys = new Map<string, KeyObject>();

  constructor(accounts: Record<string, DiscordAccount>) {
    this.accounts = accounts;
    for (const [id, a] of Object.entries(accounts)) this.keys.set(id, ed25519PublicKey(a.publicKey));
  }

  async receive(req: InboundRequest): Promise<InboundResult> {
    const a = accountOf(this.accounts, 'discord', req.account);
    const sigHex = requireHeader(req.headers, 'x-signature-ed25519');
    const ts = requireHeader(req.headers, 'x-signature-timestamp');
    if (!/^[0-9a-fA-F]{128}$/.test(sigHex)) throw new UnauthorizedRequestError('discord: X-Signature-Ed25519 is not a 64-byte hex signature');
    checkTimestamp(ts, req.now, a.toleranceSec, 'X-Signature-Timestamp');
    const ok = verify(null, Buffer.from(ts + req.rawBody, 'utf8'), this.keys.get(req.account)!, Buffer.from(sigHex, 'hex'));
    if (!ok) throw new UnauthorizedRequestError('discord: X-Signature-Ed25519 does not verify');

    const i = parseObject(req.rawBody, 'discord');
    if (str(i.application_id) !== null && str(i.application_id) !== a.applicationId) {
      throw new UnauthorizedRequestError(`discord: interaction is for application ${str(i.application_id)}, account "${req.account}" is ${a.applicationId}`);
    }
    switch (i.type) {
      case PING:
        return { kind: 'respond', status: 200, body: { type: PONG } };
      case APPLICATION_COMMAND:
        break;
      case MESSAGE_COMPONENT:
        return { kind: 'ignore', status: 200, body: { type: DEFERRED_UPDATE_MESSAGE } };
      case AUTOCOMPLETE:
        return { kind: 'ignore', status: 200, body: { type: AUTOCOMPLETE_RESULT, data: { choices: [] } } };
      default:
        throw new BadChannelRequestError(`discord: interaction type ${JSON.stringify(i.type)} is not supported`);
    }

    const id = str(i.id);
    const token = str(i.token);
    const data = isObject(i.data) ? i.data : null;
    const command = data ? str(data.name) : null;
    const channel = isObject(i.channel) ? i.channel : null;
    const channelId = str(i.channel_id) ?? (channel ? str(channel.id) : null);
    if (id === null || token === null || command === null || channelId === null) {
      throw new BadChannelRequestError('discord: APPLICATION_COMMAND without id, token, data.name or channel_id');
    }
    const guildId = str(i.guild_id);
    const member = isObject(i.member) ? i.member : null;
    const user = member && isObject(member.user) ? member.user : isObject(i.user) ? i.user : null;
    const roles = member && Array.isArray(member.roles) ? member.roles.filter((r): r is string => typeof r === 'string') : null;
    const isThread = channel !== null && typeof channel.type === 'number' && THREAD_TYPES.has(channel.type);
    const options = data && Array.isArray(data.options) ? (data.options as unknown[]) : [];

    const envelope: Envelope = {
      channel: 'discord',
      account: req.account,
      peer: { kind: guildId ? 'group' : 'dm', id: channelId },
      parentPeer: isThread ? str(channel.parent_id) : null,
      sender: user
        ? {
            id: String(user.id),
            ...(str(user.global_name) ?? str(user.username) ? { name: (str(user.global_name) ?? str(user.username))! } : {}),
            ...(roles ? { roles } : {}),
          }
        : null,
      thread: isThread ? channelId : null,
      text: [`/${command}`, ...flattenOptions(options)].join(' '),
      data: {
        interactionId: id,
        command,
        commandId: data ? str(data.id) : null,
        options: options as Json,
        guildId,
        locale: str(i.locale),
      },
      idempotencyKey: `discord:${req.account}:${id}`,
      replyTo: { application_id: a.applicationId, interaction_token: token, channel_id: channelId },
    };
    return { kind: 'envelope', envelope, ack: { status: 200, body: { type: DEFERRED_CHANNEL_MESSAGE } } };
  }

  /** The interaction's webhook `{application_id, interaction_token, channel_id}` — only the request carries the token. */
  replyTarget(e: Envelope): Json | null {
    return e.replyTo;
  }

  /**
   * A reply target `{application_id, interaction_token, channel_id?}` edits the deferred
   * original response (PATCH …/messages/@original — editing twice is harmless, so a
   * resend after a crash does not post twice). A deliver target `{to}` (a channel or
   * thread id) posts to that channel with the bot token.
   */
  async send(item: OutboxItem, fetchImpl: typeof fetch): Promise<SendResult> {
    const a = this.accounts[item.account];
    if (!a) return { ok: false, retryable: false, error: `no discord account "${item.account}" is configured` };
    const t = isObject(item.target) ? item.target : {};
    const text = payloadText(item.payload);
    if (!text) return { ok: false, retryable: false, error: 'payload has no text' };
    const content = truncate(text, MAX_TEXT);
    const appId = str(t.application_id);
    const token = str(t.interaction_token);
    const channelId = str(t.thread) ?? str(t.to) ?? str(t.channel_id);
    if (appId && token) {
      const r = await callJson(fetchImpl, `${a.apiBaseUrl}/webhooks/${appId}/${encodeURIComponent(token)}/messages/@original`, {
        method: 'PATCH',
        body: { content, allowed_mentions: NO_MENTIONS },
      });
      if (!isAnswer(r)) return r;
      if (r.status >= 200 && r.status < 300) return { ok: true, retryable: false, status: r.status, response: r.body };
      // The interaction token lives 15 minutes; after that, post to the channel if we may.
      const expired = r.status === 401 || r.status === 404;
      if (!(expired && a.botToken && channelId)) return failure(r, 'edit original response');
    }
    if (!channelId) return { ok: false, retryable: false, error: 'target has neither an interaction token nor a channel' };
    if (!a.botToken) return { ok: false, retryable: false, error: `discord account "${item.account}" has no botToken to post to channel ${channelId}` };
    const r = await callJson(fetchImpl, `${a.apiBaseUrl}/channels/${encodeURIComponent(channelId)}/messages`, {
      method: 'POST',
      body: { content, allowed_mentions: NO_MENTIONS },
      headers: { authorization: `Bot ${a.botToken}` },
    });
    if (!isAnswer(r)) return r;
    if (r.status >= 200 && r.status < 300) return { ok: true, retryable: false, status: r.status, response: r.body };
    return failure(r, 'create message');
  }
}

/** Discord errors: `{code, message}`; rate limits: 429 `{message, retry_after (s), global}`. */
function failure(r: HttpAnswer, what: string): SendResult {
  const res = isObject(r.body) ? r.body : null;
  const retryAfter = res && typeof res.retry_after === 'number' ? Math.ceil(res.retry_after * 1000) : undefined;
  const message = res && typeof res.message === 'string' ? `${res.message}${typeof res.code === 'number' ? ` (code ${res.code})` : ''}` : `HTTP ${r.status}`;
  return httpFailure(r, `${what}: ${message}`, retryAfter);
}

/** `[{name:'question', value:'hi'}]` → `['question:hi']`; subcommands become words. */
function flattenOptions(options: unknown[]): string[] {
  const out: string[] = [];
  for (const o of options) {
    if (!isObject(o)) continue;
    const name = str(o.name) ?? '';
    if (o.type === SUB_COMMAND || o.type === SUB_COMMAND_GROUP) {
      out.push(name, ...flattenOptions(Array.isArray(o.options) ? (o.options as unknown[]) : []));
    } else if (o.value !== undefined) {
      out.push(`${name}:${typeof o.value === 'string' ? o.value : JSON.stringify(o.value)}`);
    }
  }
  return out;
}
