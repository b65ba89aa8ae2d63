import { z } from 'zod';
import type { FieldIssue } from '../core/errors.ts';
import type { Envelope } from '../core/envelope.ts';
import { isValidTimezone, lastLocalHour } from '../core/zoned-time.ts';

/**
 * Sessions: the continuity scope of a conversation. One session's messages run in
 * order, one at a time (its lane); different sessions run in parallel. An agent's
 * turn receives the session's recent history.
 *
 * Scopes and their keys:
 *   main                      agent:<agent>:main
 *   per-peer                  agent:<agent>:peer:<peer>
 *   per-channel-peer          agent:<agent>:<channel>:peer:<peer>
 *   per-account-channel-peer  agent:<agent>:<channel>:<account>:peer:<peer>
 *   group                     agent:<agent>:<channel>:group:<group>
 *   thread                    agent:<agent>:<channel>:thread:<group>:<thread>
 *   isolated                  agent:<agent>:isolated:<envelope>   (every envelope its own; cron and webhooks)
 * A fork (`spine sessions fork`) is agent:<agent>:fork:<id>, seeded with its parent's history.
 */
export const SESSION_SCOPES = ['main', 'per-peer', 'per-channel-peer', 'per-account-channel-peer', 'group', 'thread', 'isolated'] as const;
export type SessionScope = (typeof SESSION_SCOPES)[number];

export const sessionsSchema = z.strictObject({
  /** Scope of direct messages when a binding does not say (default per-channel-peer). */
  dmScope: z.enum(['main', 'per-peer', 'per-channel-peer', 'per-account-channel-peer']).optional(),
  /** Most messages of history handed to a turn (default 20). */
  historyLimit: z.number().int().nonnegative().max(1000).optional(),
  reset: z
    .discriminatedUnion('mode', [
      z.strictObject({ mode: z.literal('none') }),
      z.strictObject({ mode: z.literal('daily'), atHour: z.number().int().min(0).max(23), timezone: z.string().optional() }),
      z.strictObject({ mode: z.literal('idle'), idleMinutes: z.number().int().positive() }),
    ])
    .optional(),
});

export type SessionsConfig = z.infer<typeof sessionsSchema>;

export type ResetPolicy = { mode: 'none' } | { mode: 'daily'; atHour: number; timezone: string } | { mode: 'idle'; idleMs: number };

export interface SessionSettings {
  dmScope: SessionScope;
  historyLimit: number;
  reset: ResetPolicy;
}

export function compileSessions(raw: SessionsConfig | undefined, issues: FieldIssue[]): SessionSettings {
  const r = raw?.reset ?? { mode: 'none' as const };
  let reset: ResetPolicy;
  if (r.mode === 'daily') {
    const timezone = r.timezone ?? 'UTC';
    if (!isValidTimezone(timezone)) issues.push({ path: 'sessions.reset.timezone', message: `unknown IANA timezone "${timezone}"` });
    reset = { mode: 'daily', atHour: r.atHour, timezone };
  } else if (r.mode === 'idle') reset = { mode: 'idle', idleMs: r.idleMinutes * 60_000 };
  else reset = { mode: 'none' };
  return { dmScope: raw?.dmScope ?? 'per-channel-peer', historyLimit: raw?.historyLimit ?? 20, reset };
}

/** The session scope for an envelope: the binding's, else by where it was said. */
export function scopeFor(e: Envelope, bindingScope: SessionScope | null, settings: SessionSettings): SessionScope {
  if (bindingScope) return bindingScope;
  if (e.channel === 'cron' || e.channel === 'webhook') return 'isolated';
  if (e.peer.kind === 'dm') return settings.dmScope;
  return e.thread ? 'thread' : 'group';
}

export function sessionKey(agent: string, scope: SessionScope, e: Envelope, envelopeId: string): string {
  switch (scope) {
    case 'main':
      return `agent:${agent}:main`;
    case 'per-peer':
      return `agent:${agent}:peer:${e.peer.id}`;
    case 'per-channel-peer':
      return `agent:${agent}:${e.channel}:peer:${e.peer.id}`;
    case 'per-account-channel-peer':
      return `agent:${agent}:${e.channel}:${e.account}:peer:${e.peer.id}`;
    case 'group':
      return `agent:${agent}:${e.channel}:group:${e.peer.id}`;
    case 'thread':
      return `agent:${agent}:${e.channel}:thread:${e.peer.id}:${e.thread ?? 'main'}`;
    case 'isolated':
      return `agent:${agent}:isolated:${envelopeId}`;
  }
}

/** Whether a session last active at `lastActivity` starts afresh at `now`. */
export function shouldReset(policy: ResetPolicy, lastActivity: number, now: number): boolean {
  return lastActivity < resetThreshold(policy, now);
}

/** A session last active before this moment starts afresh at `now` (the store compares in SQL). */
export function resetThreshold(policy: ResetPolicy, now: number): number {
  switch (policy.mode) {
    case 'none':
      return Number.MIN_SAFE_INTEGER;
    case 'idle':
      return now - policy.idleMs + 1;
    case 'daily':
      return lastLocalHour(policy.atHour, policy.timezone, now);
  }
}
