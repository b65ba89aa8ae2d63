import { z } from 'zod';
import type { Envelope } from '../core/envelope.ts';
import type { Json } from '../core/types.ts';

/** The JSON body of `POST /v1/envelopes`; everything but the text has a default. */
export const apiEnvelopeSchema = z.strictObject({
  channel: z.string().min(1).max(64).optional(),
  account: z.string().min(1).max(256).optional(),
  peer: z.strictObject({ kind: z.enum(['dm', 'group', 'channel']), id: z.string().min(1).max(256) }).optional(),
  parentPeer: z.string().min(1).max(256).optional(),
  sender: z.strictObject({ id: z.string().min(1).max(256), name: z.string().max(256).optional(), roles: z.array(z.string().max(64)).max(64).optional() }).optional(),
  thread: z.string().min(1).max(256).optional(),
  text: z.string().max(1_000_000).optional(),
  data: z.unknown().optional(),
  /** Skip routing and send straight to this agent (needs the operator scope). */
  agent: z.string().min(1).max(128).optional(),
});

export type ApiEnvelope = z.infer<typeof apiEnvelopeSchema>;

export function envelopeFromApi(body: ApiEnvelope, idempotencyKey: string): Envelope {
  return {
    channel: body.channel ?? 'api',
    account: body.account ?? 'default',
    peer: body.peer ?? { kind: 'dm', id: body.sender?.id ?? 'anonymous' },
    parentPeer: body.parentPeer ?? null,
    sender: body.sender ? { id: body.sender.id, ...(body.sender.name ? { name: body.sender.name } : {}), ...(body.sender.roles ? { roles: body.sender.roles } : {}) } : null,
    thread: body.thread ?? null,
    text: body.text ?? '',
    data: (body.data ?? null) as Json,
    idempotencyKey,
    replyTo: null,
  };
}

/**
 * What a run caused by an envelope gets as its input (and what an agent's input
 * contract checks): the sender's explicit `input` if it gave one, else the text and
 * the envelope.
 */
export function envelopeInput(e: Envelope, envelopeId: string): Json {
  if (e.input !== undefined) return e.input;
  return {
    text: e.text,
    envelope: {
      id: envelopeId,
      channel: e.channel,
      account: e.account,
      peer: e.peer,
      parentPeer: e.parentPeer,
      sender: e.sender,
      thread: e.thread,
      data: e.data,
    },
  };
}
