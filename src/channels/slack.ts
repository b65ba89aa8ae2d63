import type { Json } from '../core/types.ts';
import type { OutboxItem } from '../store/outbox.ts';
import type { Envelope } from '../core/envelope.ts';
import { type ChannelAdapter, type InboundRequest, type InboundResult, type SendResult } from '../core/channel.ts';
import { BadChannelRequestError, UnauthorizedRequestError } from '../core/errors.ts';
import type { SlackAccount } from './config.ts';
import { accountOf, callJson, checkTimestamp, hmacSha256Hex, httpFailure, isAnswer, isObject, parseObject, payloadText, requireHeader, safeEqualHex, str, truncate } from './platform.ts';

/** chat.postMessage accepts up to 40,000 characters of text. */
const MAX_TEXT = 40_000;

/** Slack Web API errors that mean "try again later" (HTTP 200 with ok:false). */
const RETRYABLE_ERRORS = new Set(['ratelimited', 'rate_limited', 'internal_error', 'fatal_error', 'service_unavailable', 'request_timeout']);

/** Message subtypes that are still a person saying something; every other subtype (edits, joins, bots) is ignored. */
const USER_SUBTYPES = new Set(['file_share', 'thread_broadcast']);

/**
 * Slack Events API. Requests are signed with the app's signing secret (v0):
 * `X-Slack-Signature: v0=hex(HMAC-SHA256("v0:<X-Slack-Request-Timestamp>:<body>"))`,
 * and a timestamp outside the tolerance (default 5 minutes) is refused as a replay.
 *
 * `url_verification` is answered with its challenge; `event_callback` carrying a
 * `message` (or `app_mention`) from a person becomes an envelope; bot messages,
 * edits, deletions and other events are acknowledged and dropped.
 * Replies go out through `chat.postMessage`.
 */
export class SlackChannel implements ChannelAdapter {
  readonly name = 'slack';
  private readonly accounts: Record<string, SlackAccount>;

  constructor(accounts: Record<string, SlackAccount>) {
    this.accounts = accounts;
  }

  async receive(req: InboundRequest): Promise<InboundResult> {
    const a = accountOf(this.accounts, 'slack', req.account);
    const ts = requireHeader(req.headers, 'x-slack-request-timestamp');
    const sig = requireHeader(req.headers, 'x-slack-signature');
    checkTimestamp(ts, req.now, a.toleranceSec, 'X-Slack-Request-Timestamp');
    if (!sig.startsWith('v0=')) throw new UnauthorizedRequestError('slack: X-Slack-Signature is not a v0 signature');
    const expected = hmacSha256Hex(a.signingSecret, `v0:${ts.trim()}:${req.rawBody}`);
    if (!safeEqualHex(sig.slice(3), expected)) throw new UnauthorizedRequestError('slack: X-Slack-Signature does not match the body');

    const body = parseObject(req.rawBody, 'slack');
    if (body.type === 'url_verification') {
      if (typeof body.challenge !== 'string') throw new BadChannelRequestError('slack: url_verification without a challenge');
      return { kind: 'respond', status: 200, body: { challenge: body.challenge } };
    }
    if (body.type !== 'event_callback') return { kind: 'ignore', status: 200, body: null };
    const event = body.event;
    const eventId = str(body.event_id);
    if (!isObject(event) || eventId === null) throw new BadChannelRequestError('slack: event_callback without event or event_id');
    if (event.type !== 'message' && event.type !== 'app_mention') return { kind: 'ignore', status: 200, body: null };
    const subtype = str(event.subtype);
    if (event.bot_id !== undefined || (subtype !== null && !USER_SUBTYPES.has(subtype))) return { kind: 'ignore', status: 200, body: null };
    const channel = str(event.channel);
    const user = str(event.user);
    if (channel === null || user === null) return { kind: 'ignore', status: 200, body: null };

    const envelope: Envelope = {
      channel: 'slack',
      account: req.account,
      peer: { kind: event.channel_type === 'im' ? 'dm' : 'group', id: channel },
      parentPeer: null,
      sender: { id: user },
      thread: str(event.thread_ts),
      text: str(event.text) ?? '',
      data: {
        type: event.type,
        ts: str(event.ts),
        channelType: str(event.channel_type),
        team: str(event.team) ?? str(body.team_id),
        apiAppId: str(body.api_app_id),
        eventTime: typeof body.event_time === 'number' ? body.event_time : null,
        eventId,
        ...(Array.isArray(event.files) ? { files: event.files as Json } : {}),
      },
      idempotencyKey: `slack:${req.account}:${eventId}`,
      replyTo: null,
    };
    envelope.replyTo = this.replyTarget(envelope);
    return { kind: 'envelope', envelope, ack: { status: 200, body: null } };
  }

  /** `{channel, thread_ts}`: answers in the thread the message was in (or in the channel). */
  replyTarget(e: Envelope): Json | null {
    return { channel: e.peer.id, ...(e.thread ? { thread_ts: e.thread } : {}) };
  }

  /** chat.postMessage; takes a reply target `{channel, thread_ts?}` or a deliver target `{to, thread?}`. */
  async send(item: OutboxItem, fetchImpl: typeof fetch): Promise<SendResult> {
    const a = this.accounts[item.account];
    if (!a) return { ok: false, retryable: false, error: `no slack account "${item.account}" is configured` };
    const t = isObject(item.target) ? item.target : {};
    const channel = str(t.channel) ?? str(t.to);
    const threadTs = str(t.thread_ts) ?? str(t.thread);
    if (channel === null) return { ok: false, retryable: false, error: 'target has no channel' };
    const text = payloadText(item.payload);
    if (!text) return { ok: false, retryable: false, error: 'payload has no text' };
    const body: Json = { channel, text: truncate(text, MAX_TEXT), ...(threadTs ? { thread_ts: threadTs } : {}) };
    const r = await callJson(fetchImpl, `${a.apiBaseUrl}/chat.postMessage`, { method: 'POST', body, headers: { authorization: `Bearer ${a.botToken}` } });
    if (!isAnswer(r)) return r;
    const res = isObject(r.body) ? r.body : null;
    if (r.status !== 200) return httpFailure(r, `chat.postMessage answered HTTP ${r.status}${res && typeof res.error === 'string' ? `: ${res.error}` : ''}`);
    if (res?.ok === true) return { ok: true, retryable: false, status: 200, response: r.body };
    const error = res && typeof res.error === 'string' ? res.error : 'unexpected response';
    const out = httpFailure(r, `chat.postMessage: ${error}`);
    out.retryable = RETRYABLE_ERRORS.has(error);
    return out;
  }
}
