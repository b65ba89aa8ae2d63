import type { Envelope } from '../core/envelope.ts';
import { stableJson } from '../core/json.ts';
import { envelopeFromApi, type ApiEnvelope } from '../intake/envelope.ts';
import type { Intake } from '../intake/intake.ts';
import type { AcceptResult, EnvelopeRecord } from '../store/store.ts';
import { isAllowed, scopesFor, type Principal } from './auth.ts';
import { ApiError, forbidden } from './errors.ts';

/**
 * What the caller may submit: the channel's submit scope, and the operator scope to
 * address an agent directly. Checked for every item of a batch before any is accepted.
 */
export function checkSubmitter(principal: Principal, input: ApiEnvelope, where = ''): void {
  const channel = input.channel ?? 'api';
  if (!isAllowed(principal, 'submit', channel)) throw forbidden(principal, scopesFor('submit', channel), `submit envelopes on channel "${channel}"${where}`);
  if (input.agent !== undefined && !isAllowed(principal, 'operate')) throw forbidden(principal, scopesFor('operate'), `address an agent directly ("agent")${where}`);
}

/**
 * One envelope from the HTTP API through the door, as `POST /v1/envelopes` and each
 * item of `POST /v1/envelopes:batch` do it: the caller's scopes, the roles it may
 * assert, intake, and a reused idempotency key caught.
 */
export async function submitFromApi(intake: Intake, principal: Principal, input: ApiEnvelope, key: string): Promise<AcceptResult> {
  checkSubmitter(principal, input);
  // Roles are authority: a caller that may only submit (an ingress:* token) cannot grant
  // itself any. Only operator and admin tokens, and channel-verified identities (Slack,
  // Discord, Telegram), carry sender roles (docs/security.md).
  const asserted = isAllowed(principal, 'operate') || input.sender?.roles === undefined ? input : { ...input, sender: { ...input.sender, roles: undefined } };
  const envelope = envelopeFromApi(asserted, `api:${key}`);
  const result = await intake.accept(envelope, { actor: `token:${principal.name}`, ...(input.agent ? { agent: input.agent } : {}) });
  if (!result.created && (!sameEnvelope(envelope, result.envelope) || directAgent(result.envelope, result.run) !== (input.agent ?? null))) {
    throw new ApiError('IDEMPOTENCY_KEY_REUSED', `Idempotency-Key "${key}" was already used for a different envelope (${result.envelope.id}); use a new key`, {
      envelope: result.envelope.id,
    });
  }
  return result;
}

/** What identifies an envelope's content, for catching a reused Idempotency-Key. */
function fingerprint(e: Pick<Envelope, 'channel' | 'account' | 'peer' | 'parentPeer' | 'sender' | 'thread' | 'text' | 'data'>): string {
  return stableJson({ channel: e.channel, account: e.account, peer: e.peer, parentPeer: e.parentPeer, sender: e.sender, thread: e.thread, text: e.text, data: e.data });
}

function sameEnvelope(a: Envelope, b: EnvelopeRecord): boolean {
  return fingerprint(a) === fingerprint(b);
}

/** The agent a stored envelope was addressed to directly (`agent` in the request), or null if it was routed by the bindings. */
function directAgent(e: EnvelopeRecord, run: { agent: string } | null): string | null {
  const decision = e.route as { binding?: unknown; why?: unknown } | null;
  const direct = decision !== null && decision.binding === null && typeof decision.why === 'string' && decision.why.startsWith('addressed directly');
  return direct ? (run?.agent ?? null) : null;
}
