import type { Json } from '../core/types.ts';
import type { OutboxItem } from '../store/outbox.ts';
import type { Envelope } from '../core/envelope.ts';
import { type ChannelAdapter, type InboundRequest, type InboundResult, type SendResult } from '../core/channel.ts';
import { UnauthorizedRequestError } from '../core/errors.ts';
import type { WebhookAccount } from './config.ts';
import {
  accountOf,
  callJson,
  checkTimestamp,
  header,
  hmacSha256Hex,
  httpFailure,
  isAnswer,
  isObject,
  parseObject,
  payloadText,
  requireHeader,
  safeEqualHex,
  sha256Hex,
  snippet,
} from './platform.ts';

/** Delivery-id headers tried, in order, when an account names none. */
const DELIVERY_HEADERS = ['x-github-delivery', 'x-delivery-id', 'idempotency-key'];

/**
 * A generic signed webhook (GitHub, Stripe-like senders, internal services):
 * HMAC-SHA256 of the raw body — or of `<timestamp>.<body>` when the account names a
 * timestamp header — in a configurable header, as `<hex>` or `sha256=<hex>`.
 *
 * Envelope: peer = the account (kind `channel`), text = the configured field or the
 * whole body, data = { event, delivery, payload }, idempotency = the SHA-256 of the
 * signed bytes (the body, or `<timestamp>.<body>`). The delivery-id header is kept in
 * `data` but is not the key: it is not covered by the signature, so a captured
 * request replayed with a new or missing delivery id would otherwise be new work.
 * A replay is a duplicate forever; with `timestampHeader` one outside the tolerance
 * is refused outright (docs/security.md).
 */
export class WebhookChannel implements ChannelAdapter {
  readonly name = 'webhook';
  private readonly accounts: Record<string, WebhookAccount>;

  constructor(accounts: Record<string, WebhookAccount>) {
    this.accounts = accounts;
  }

  async receive(req: InboundRequest): Promise<InboundResult> {
    const a = accountOf(this.accounts, 'webhook', req.account);
    const given = requireHeader(req.headers, a.signatureHeader);
    const signature = given.replace(/^sha256=/i, '');
    let signed = req.rawBody;
    if (a.timestampHeader) {
      const ts = requireHeader(req.headers, a.timestampHeader);
      checkTimestamp(ts, req.now, a.toleranceSec, a.timestampHeader);
      signed = `${ts.trim()}.${req.rawBody}`;
    }
    if (!safeEqualHex(signature, hmacSha256Hex(a.secret, signed))) throw new UnauthorizedRequestError(`webhook: ${a.signatureHeader} does not match the body`);

    const body = parseObject(req.rawBody, 'webhook');
    const delivery = a.deliveryHeader ? header(req.headers, a.deliveryHeader) : (DELIVERY_HEADERS.map((h) => header(req.headers, h)).find((v) => v !== null) ?? null);
    const event = header(req.headers, a.eventHeader);
    const envelope: Envelope = {
      channel: 'webhook',
      account: req.account,
      peer: { kind: 'channel', id: req.account },
      parentPeer: null,
      sender: null,
      thread: null,
      text: a.textField ? textAt(body, a.textField) : req.rawBody,
      data: { event, delivery, payload: body as Json },
      idempotencyKey: `webhook:${req.account}:sha256:${sha256Hex(signed)}`,
      replyTo: null,
    };
    envelope.replyTo = this.replyTarget(envelope);
    return { kind: 'envelope', envelope, ack: { status: 202, body: { accepted: true } } };
  }

  replyTarget(e: Envelope): Json | null {
    const a = this.accounts[e.account];
    if (!a?.replyUrl) return null;
    return { inReplyTo: e.idempotencyKey };
  }

  /** POSTs `{text, inReplyTo?, to?, runId}` to the account's replyUrl, signed like inbound requests. */
  async send(item: OutboxItem, fetchImpl: typeof fetch): Promise<SendResult> {
    const a = this.accounts[item.account];
    if (!a) return { ok: false, retryable: false, error: `no webhook account "${item.account}" is configured` };
    if (!a.replyUrl) return { ok: false, retryable: false, error: `webhook account "${item.account}" has no replyUrl` };
    const text = payloadText(item.payload);
    if (text === null) return { ok: false, retryable: false, error: 'payload has no text' };
    const target = isObject(item.target) ? item.target : {};
    const body: Json = {
      text,
      ...(typeof target.inReplyTo === 'string' ? { inReplyTo: target.inReplyTo } : {}),
      ...(typeof target.to === 'string' ? { to: target.to } : {}),
      runId: item.runId,
      idempotencyKey: item.idempotencyKey,
    };
    const raw = JSON.stringify(body);
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = hmacSha256Hex(a.secret, a.timestampHeader ? `${ts}.${raw}` : raw);
    const headers: Record<string, string> = { [a.signatureHeader]: `sha256=${sig}`, 'idempotency-key': item.idempotencyKey };
    if (a.timestampHeader) headers[a.timestampHeader] = ts;
    const r = await callJson(fetchImpl, a.replyUrl, { method: 'POST', body, headers });
    if (!isAnswer(r)) return r;
    if (r.status >= 200 && r.status < 300) return { ok: true, retryable: false, status: r.status, response: r.body };
    return httpFailure(r, `replyUrl answered ${r.status}${r.text ? ': ' + snippet(r.text) : ''}`);
  }
}

/** The value at a dotted path of the body as text (strings as they are, anything else as JSON). */
function textAt(body: Record<string, unknown>, path: string): string {
  let v: unknown = body;
  for (const key of path.split('.')) {
    if (Array.isArray(v) && /^\d+$/.test(key)) v = v[Number(key)];
    else if (isObject(v)) v = v[key];
    else return '';
  }
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}
