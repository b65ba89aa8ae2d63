import { z } from 'zod';
import type { FieldIssue } from '../core/errors.ts';
import type { Envelope } from '../core/envelope.ts';
import { matches } from '../core/patterns.ts';
import { SESSION_SCOPES, type SessionScope } from './sessions.ts';

/**
 * Bindings: deterministic routing rules `match → agent`. The most specific tier
 * wins; within a tier, config order decides; every decision records the binding
 * that fired and why. Nothing guesses: an envelope no binding matches, with no
 * default binding, is put into the `unroutable` error state.
 *
 * Tiers, most specific first:
 *   1 peer         match.peer (the exact chat, channel or DM)
 *   2 thread       match.thread or match.parentPeer
 *   3 group+roles  match.group and match.roles
 *   4 group        match.group
 *   5 account      match.account
 *   6 channel      match.channel
 *   7 default      an empty match
 */

export const TIERS = ['peer', 'thread', 'group+roles', 'group', 'account', 'channel', 'default'] as const;
export type Tier = (typeof TIERS)[number];

const glob = z.string().min(1);

export const bindingSchema = z.strictObject({
  /** A name for the binding in decisions and listings (default: its position). */
  id: z.string().min(1).optional(),
  match: z
    .strictObject({
      channel: glob.optional(),
      account: glob.optional(),
      peer: glob.optional(),
      parentPeer: glob.optional(),
      group: glob.optional(),
      thread: glob.optional(),
      /** Any of these sender roles. */
      roles: z.array(z.string().min(1)).min(1).optional(),
    })
    .optional(),
  /** The agent that gets the work … */
  agent: z.string().min(1).optional(),
  /** … or a routing agent whose output `{ "agent": "<name>" }` picks it among `candidates`. */
  router: z
    .strictObject({
      agent: z.string().min(1),
      candidates: z.array(z.string().min(1)).min(1),
      /** Used when the router fails or names anything else. */
      fallback: z.string().min(1),
    })
    .optional(),
  session: z.enum(SESSION_SCOPES).optional(),
});

export type BindingConfig = z.infer<typeof bindingSchema>;

export interface Binding {
  id: string;
  /** Position in the config, for ties. */
  order: number;
  tier: Tier;
  match: NonNullable<BindingConfig['match']>;
  agent: string | null;
  router: BindingConfig['router'] | null;
  session: SessionScope | null;
}

export function tierOf(m: Binding['match']): Tier {
  if (m.peer) return 'peer';
  if (m.thread || m.parentPeer) return 'thread';
  if (m.group && m.roles) return 'group+roles';
  if (m.group) return 'group';
  if (m.account) return 'account';
  if (m.channel) return 'channel';
  return 'default';
}

export function compileBindings(raw: BindingConfig[] | undefined, agentNames: readonly string[], issues: FieldIssue[]): Binding[] {
  const out: Binding[] = [];
  const ids = new Set<string>();
  (raw ?? []).forEach((b, i) => {
    const path = `bindings.${i}`;
    const id = b.id ?? `binding-${i}`;
    if (ids.has(id)) issues.push({ path: `${path}.id`, message: `duplicate binding id "${id}"` });
    ids.add(id);
    if ((b.agent === undefined) === (b.router === undefined)) issues.push({ path: `${path}.agent`, message: 'a binding names exactly one of agent or router' });
    const known = (name: string, field: string) => {
      if (!agentNames.includes(name)) issues.push({ path: `${path}.${field}`, message: `unknown agent "${name}"` });
    };
    if (b.agent) known(b.agent, 'agent');
    if (b.router) {
      known(b.router.agent, 'router.agent');
      known(b.router.fallback, 'router.fallback');
      b.router.candidates.forEach((c, j) => known(c, `router.candidates.${j}`));
    }
    if (b.match?.roles && !b.match.group) issues.push({ path: `${path}.match.roles`, message: 'roles are matched within a group: add match.group' });
    const match = b.match ?? {};
    out.push({ id, order: i, tier: tierOf(match), match, agent: b.agent ?? null, router: b.router ?? null, session: b.session ?? null });
  });
  return out;
}

export interface RouteCandidate {
  binding: string;
  tier: Tier;
  matched: boolean;
  why: string;
}

export type RouteDecision =
  | { ok: true; binding: Binding; agent: string; why: string; candidates: RouteCandidate[] }
  | { ok: false; code: 'UNROUTABLE'; why: string; candidates: RouteCandidate[] };

/** Which of a binding's fields fail for this envelope (empty: it matches). */
function mismatches(b: Binding, e: Envelope): string[] {
  const bad: string[] = [];
  const m = b.match;
  const check = (field: string, pattern: string | undefined, value: string | null | undefined) => {
    if (pattern === undefined) return;
    if (value === null || value === undefined || !matches(pattern, value)) bad.push(`${field} ${value ?? '(none)'} ≠ ${pattern}`);
  };
  check('channel', m.channel, e.channel);
  check('account', m.account, e.account);
  check('peer', m.peer, e.peer.id);
  check('parentPeer', m.parentPeer, e.parentPeer);
  check('group', m.group, e.peer.kind === 'dm' ? null : e.peer.id);
  check('thread', m.thread, e.thread);
  if (m.roles && !m.roles.some((r) => e.sender?.roles?.includes(r))) bad.push(`sender has none of the roles ${m.roles.join(', ')}`);
  return bad;
}

/** Picks the binding for an envelope: most specific tier first, then config order. */
export function route(bindings: readonly Binding[], e: Envelope): RouteDecision {
  const candidates: RouteCandidate[] = [];
  let winner: Binding | null = null;
  const tied: Binding[] = [];
  for (const b of bindings) {
    const bad = mismatches(b, e);
    candidates.push({ binding: b.id, tier: b.tier, matched: bad.length === 0, why: bad.length ? bad.join('; ') : describeMatch(b) });
    if (bad.length) continue;
    if (!winner || TIERS.indexOf(b.tier) < TIERS.indexOf(winner.tier)) {
      winner = b;
      tied.length = 0;
    } else if (b.tier === winner.tier) tied.push(b);
  }
  if (!winner) {
    // The reason names why each binding failed, so the stored error explains itself.
    const reasons = candidates.length ? candidates.map((c) => `${c.binding}: ${c.why}`).join('; ') : 'no bindings are configured';
    return { ok: false, code: 'UNROUTABLE', why: `no binding matches ${describeEnvelope(e)} and there is no default binding (${reasons})`, candidates };
  }
  const tie = tied.length ? `; ${tied.map((t) => t.id).join(', ')} matched the same tier and lost on config order` : '';
  const agent = winner.agent ?? winner.router!.agent;
  return { ok: true, binding: winner, agent, why: `${winner.id} (tier ${winner.tier}: ${describeMatch(winner)})${tie}`, candidates };
}

function describeMatch(b: Binding): string {
  const parts = Object.entries(b.match).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('|') : String(v)}`);
  return parts.length ? parts.join(', ') : 'matches everything';
}

export function describeEnvelope(e: Envelope): string {
  return `channel=${e.channel} account=${e.account} peer=${e.peer.kind}:${e.peer.id}${e.thread ? ` thread=${e.thread}` : ''}`;
}
