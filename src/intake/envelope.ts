import { z } from 'zod';
import type { Json } from '../core/types.ts';

/**
 * An envelope: one unit of inbound work, normalised from whatever brought it (a chat
 * message, a webhook, a cron tick, an operator command, an API call) and
 * deduplicated by its idempotency key.
 */
export interface Envelope {
  /** `api`, `webhook`, `slack`, `telegram`, `discord`, `cron`, `cli`, … */
  channel: string;
  /** The workspace, bot or app on that channel; `default` when there is one. */
  account: string;
  /** Where it was said: a direct message, a group or a channel. */
  peer: { kind: 'dm' | 'group' | 'channel'; id: string };
  /** The peer that contains this one (e.g. a thread channel's parent), if any. */
  parentPeer: string | null;
  sender: { id: string; name?: string; roles?: string[] } | null;
  thread: string | null;
  text: string;
  data: Json;
  /** The platform's event id, or the caller's Idempotency-Key. */
  idempotencyKey: string;
  /** How to answer, for channels that reply (used by the outbox). */
  replyTo: Json | null;
}

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
  agent: z.string().min(1).optional(),
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

/** What a run caused by an envelope gets as its input (and what an agent's input contract checks). */
export function envelopeInput(e: Envelope, envelopeId: string): Json {
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
