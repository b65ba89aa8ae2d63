import { userInfo } from 'node:os';
import type { Envelope } from '../core/envelope.ts';
import { newId } from '../core/ids.ts';
import type { Json } from '../core/types.ts';

/**
 * The `cli` channel: work typed at a terminal (`spine send`, `spine up --send`) enters
 * through intake like every other door — an envelope, a session, an
 * `envelope.received` audit event. Its peer is the OS user at the keyboard.
 */
export const CLI_CHANNEL = 'cli';

/** The OS user running the command (`$USER` where the user database has no entry, e.g. some containers). */
export function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER || process.env.LOGNAME || 'unknown';
  }
}

export interface CliSubmission {
  text: string;
  /**
   * Structured input (`--input <json>`): recorded as the envelope's `data`, and the
   * run's input exactly, so an agent whose input contract wants an object gets it.
   */
  input?: Json;
  /** The caller's key; a repeat finds the first envelope and its run. Default: a fresh one. */
  idempotencyKey?: string | null;
  user?: string;
}

/** The envelope of one CLI submission. */
export function cliEnvelope(s: CliSubmission): Envelope {
  const user = s.user ?? osUser();
  return {
    channel: CLI_CHANNEL,
    account: 'default',
    peer: { kind: 'dm', id: user },
    parentPeer: null,
    sender: { id: user },
    thread: null,
    text: s.text,
    data: s.input ?? null,
    idempotencyKey: s.idempotencyKey ?? newId('cli'),
    replyTo: null,
    ...(s.input === undefined ? {} : { input: s.input }),
  };
}
