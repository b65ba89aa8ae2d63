import type { Envelope } from './envelope.ts';
import type { Json } from './types.ts';

/**
 * A channel adapter turns a platform's signed webhook request into an envelope, and
 * an outbox item into that platform's real API call. Adapters are pure edge code:
 * the gateway hands them the raw request; the outbox dispatcher hands them items.
 */

export interface InboundRequest {
  /** Account segment of the webhook URL: /v1/channels/<channel>/<account>. */
  account: string;
  headers: Headers;
  /** The body exactly as received (signatures are over the raw bytes). */
  rawBody: string;
  now: number;
}

export type InboundResult =
  /** Work for Spine: store the envelope, then answer with `ack` (the platform's expected reply). */
  | { kind: 'envelope'; envelope: Envelope; ack: { status: number; body: Json | string | null } }
  /** A handshake the platform needs answered at once (Slack url_verification, Discord PING); nothing is stored. */
  | { kind: 'respond'; status: number; body: Json | string | null }
  /** Signed and valid but nothing to do (e.g. a bot's own message, an edit). Acknowledged; nothing is stored. */
  | { kind: 'ignore'; status: number; body: Json | string | null };

/** What a channel sends: an outbox item as the adapter sees it. */
export interface OutboundMessage {
  /** Stable across retries of one message: platforms that dedupe get it as their idempotency key. */
  idempotencyKey: string;
  runId: string | null;
  channel: string;
  account: string;
  /** Where to send it, in the channel's terms (e.g. {channel, thread_ts} for Slack). */
  target: Json;
  payload: Json;
}

export interface SendResult {
  ok: boolean;
  /** On failure: worth trying again (5xx, 429, network) or not (4xx). */
  retryable: boolean;
  /** When the platform asked us to wait (429 Retry-After), in ms. */
  retryAfterMs?: number;
  status?: number;
  response?: Json;
  error?: string;
}

export interface ChannelAdapter {
  readonly name: string;
  /** Verifies and normalises one webhook request; throws UnauthorizedRequestError / BadChannelRequestError (core/errors.ts). */
  receive(req: InboundRequest): Promise<InboundResult>;
  /** Sends one outbox item with the platform's real API shape. */
  send(item: OutboundMessage, fetchImpl: typeof fetch): Promise<SendResult>;
  /** The outbox target for replying to an envelope of this channel (stored as the envelope's replyTo). */
  replyTarget?(envelope: Envelope): Json | null;
}

/** A run's answer to the channel message that caused it, as the channel layer composes it. */
export interface ComposedReply {
  /** The recipient in the channel's terms, for policy (`deliver:<channel>:<to>` and allowlists). */
  to: string;
  /** Where the outbox sends it (the envelope's reply target, as the adapter made it). */
  target: Json;
  payload: Json;
}

/** Composes the reply to a channel message from the run's output; null: nothing to say. */
export type ReplyComposer = (reply: { channel: string; account: string; target: Json }, output: Json) => ComposedReply | null;

/** The text a run's output becomes in a reply: a string as it is, else its `text`, else its JSON. Null: nothing to say. */
export function replyText(output: Json): string | null {
  if (output === null) return null;
  if (typeof output === 'string') return output === '' ? null : output;
  if (typeof output === 'object' && !Array.isArray(output) && typeof output.text === 'string') return output.text === '' ? null : output.text;
  return JSON.stringify(output);
}

/** Who a reply target names: a chat or channel id where the platform has one, else the thing replied to. */
function recipientOf(target: Json): string {
  if (target !== null && typeof target === 'object' && !Array.isArray(target)) {
    for (const k of ['channel', 'chat_id', 'channel_id', 'to', 'inReplyTo']) {
      const v = target[k];
      if (typeof v === 'string' || typeof v === 'number') return String(v);
    }
  }
  return 'reply';
}

/** The reply every channel sends unless its adapter composes its own: the output's text to the envelope's reply target. */
export function composeReply(reply: { target: Json }, output: Json): ComposedReply | null {
  const text = replyText(output);
  if (reply.target === null || text === null) return null;
  return { to: recipientOf(reply.target), target: reply.target, payload: { text } };
}
