import type { Json } from './types.ts';

/** A caller's idempotency key: 1–255 printable ASCII characters (header, batch item or CLI line alike). */
export const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;

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
  /**
   * The run's input exactly, when the sender gives structured input to an agent it
   * addresses directly (`spine send <agent> --input <json>`). Absent, the run's input
   * is `{text, envelope}` (intake/envelope.ts `envelopeInput`). Not stored with the
   * envelope (its `data` records what was sent); the run records it as its input.
   */
  input?: Json;
}
