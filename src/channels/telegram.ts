import type { Json } from '../core/types.ts';
import type { OutboxItem } from '../store/outbox.ts';
import type { Envelope } from '../core/envelope.ts';
import { type ChannelAdapter, type InboundRequest, type InboundResult, type SendResult } from '../core/channel.ts';
import { BadChannelRequestError, UnauthorizedRequestError } from '../core/errors.ts';
import type { TelegramAccount } from './config.ts';
import { accountOf, callJson, header, httpFailure, isAnswer, isObject, parseObject, payloadText, safeEqual, str, truncate } from './platform.ts';

/** sendMessage accepts 1–4096 characters of text. */
const MAX_TEXT = 4096;

const PEER_KIND: Record<string, Envelope['peer']['kind']> = { private: 'dm', group: 'group', supergroup: 'group', channel: 'channel' };

/**
 * Telegram Bot API webhook (setWebhook with `secret_token`). Telegram sends the
 * secret in `X-Telegram-Bot-Api-Secret-Token`; it is compared in constant time.
 *
 * An Update with `message` (or `channel_post`) that has text or a caption becomes an
 * envelope; edits, service messages, other update kinds and bots are acknowledged
 * and dropped. Replies go out through `sendMessage`, as a reply to the message.
 */
export class TelegramChannel implements ChannelAdapter {
  readonly name = 'telegram';
  private readonly accounts: Record<string, TelegramAccount>;

  constructor(accounts: Record<string, TelegramAccount>) {
    this.accounts = accounts;
  }

  async receive(req: InboundRequest): Promise<InboundResult> {
    const a = accountOf(this.accounts, 'telegram', req.account);
    const given = header(req.headers, 'x-telegram-bot-api-secret-token');
    if (given === null) throw new UnauthorizedRequestError('telegram: missing X-Telegram-Bot-Api-Secret-Token header');
    if (!safeEqual(given, a.secretToken)) throw new UnauthorizedRequestError('telegram: X-Telegram-Bot-Api-Secret-Token does not match');

    const update = parseObject(req.rawBody, 'telegram');
    const updateId = typeof update.update_id === 'number' && Number.isInteger(update.update_id) ? update.update_id : null;
    if (updateId === null) throw new BadChannelRequestError('telegram: update without an integer update_id');
    const message = isObject(update.message) ? update.message : isObject(update.channel_post) ? update.channel_post : null;
    if (!message) return { kind: 'ignore', status: 200, body: null };
    const chat = isObject(message.chat) ? message.chat : null;
    const chatId = chat ? str(chat.id) : null;
    const kind = chat && typeof chat.type === 'string' ? PEER_KIND[chat.type] : undefined;
    if (chatId === null || kind === undefined) throw new BadChannelRequestError('telegram: message without a chat id and type');
    const from = isObject(message.from) ? message.from : null;
    if (from?.is_bot === true) return { kind: 'ignore', status: 200, body: null };
    const text = str(message.text) ?? str(message.caption);
    if (text === null) return { kind: 'ignore', status: 200, body: null };

    const senderChat = isObject(message.sender_chat) ? message.sender_chat : null;
    const sender: Envelope['sender'] = from
      ? { id: String(from.id), ...nameOf(from) }
      : senderChat
        ? { id: String(senderChat.id), ...nameOf(senderChat) }
        : null;
    // Forum topics are threads; the reply chains of ordinary groups are not.
    const thread = message.is_topic_message === true ? str(message.message_thread_id) : null;
    const messageId = typeof message.message_id === 'number' ? message.message_id : null;
    const envelope: Envelope = {
      channel: 'telegram',
      account: req.account,
      peer: { kind, id: chatId },
      parentPeer: null,
      sender,
      thread,
      text,
      data: {
        updateId,
        messageId,
        date: typeof message.date === 'number' ? message.date : null,
        chatType: str(chat?.type),
        chatTitle: str(chat?.title),
        ...(isObject(message.reply_to_message) && typeof message.reply_to_message.message_id === 'number'
          ? { replyToMessageId: message.reply_to_message.message_id }
          : {}),
        ...(Array.isArray(message.entities) ? { entities: message.entities as Json } : {}),
      },
      idempotencyKey: `telegram:${req.account}:${updateId}`,
      replyTo: null,
    };
    envelope.replyTo = this.replyTarget(envelope);
    return { kind: 'envelope', envelope, ack: { status: 200, body: null } };
  }

  /** `{chat_id, message_thread_id?, reply_to_message_id?}`. */
  replyTarget(e: Envelope): Json | null {
    const data = isObject(e.data) ? e.data : {};
    const chatId = /^-?\d+$/.test(e.peer.id) ? Number(e.peer.id) : e.peer.id;
    return {
      chat_id: chatId,
      ...(e.thread && /^\d+$/.test(e.thread) ? { message_thread_id: Number(e.thread) } : {}),
      ...(typeof data.messageId === 'number' ? { reply_to_message_id: data.messageId } : {}),
    };
  }

  /** sendMessage; takes a reply target `{chat_id, message_thread_id?, reply_to_message_id?}` or a deliver target `{to, thread?}`. */
  async send(item: OutboxItem, fetchImpl: typeof fetch): Promise<SendResult> {
    const a = this.accounts[item.account];
    if (!a) return { ok: false, retryable: false, error: `no telegram account "${item.account}" is configured` };
    const t = isObject(item.target) ? item.target : {};
    const chatId = t.chat_id ?? t.to;
    if (typeof chatId !== 'string' && typeof chatId !== 'number') return { ok: false, retryable: false, error: 'target has no chat_id' };
    const thread = t.message_thread_id ?? (typeof t.thread === 'string' && /^\d+$/.test(t.thread) ? Number(t.thread) : undefined);
    const text = payloadText(item.payload);
    if (!text) return { ok: false, retryable: false, error: 'payload has no text' };
    const body: Json = {
      chat_id: chatId,
      text: truncate(text, MAX_TEXT),
      ...(typeof thread === 'number' ? { message_thread_id: thread } : {}),
      // If the message was deleted meanwhile, send the answer anyway rather than fail.
      ...(typeof t.reply_to_message_id === 'number' ? { reply_parameters: { message_id: t.reply_to_message_id, allow_sending_without_reply: true } } : {}),
    };
    const r = await callJson(fetchImpl, `${a.apiBaseUrl}/bot${a.botToken}/sendMessage`, { method: 'POST', body });
    if (!isAnswer(r)) return r;
    const res = isObject(r.body) ? r.body : null;
    if (r.status === 200 && res?.ok === true) return { ok: true, retryable: false, status: 200, response: r.body };
    const params = res && isObject(res.parameters) ? res.parameters : null;
    const retryAfter = params && typeof params.retry_after === 'number' ? params.retry_after * 1000 : undefined;
    const description = res && typeof res.description === 'string' ? res.description : `HTTP ${r.status}`;
    return httpFailure(r, `sendMessage: ${description}`, retryAfter);
  }
}

function nameOf(o: Record<string, unknown>): { name?: string } {
  const username = str(o.username);
  if (username) return { name: username };
  const full = [str(o.first_name), str(o.last_name)].filter((s) => s).join(' ') || str(o.title);
  return full ? { name: full } : {};
}
