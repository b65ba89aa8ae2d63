import { z } from 'zod';
import { digest } from '../../core/digest.ts';
import type { FieldIssue } from '../../core/errors.ts';
import { SCOPE_KINDS, scopeProblem, type ScopeMatch } from '../../core/memory.ts';
import type { Json } from '../../core/types.ts';
import type { HeartbeatPatch, HeartbeatState, RunEffects } from '../../store/schedules.ts';
import { TERMINAL_RUN_STATES } from '../../core/states.ts';

/**
 * Heartbeats (docs/schedules.md): a schedule option that makes a periodic check-in
 * cheap. An idle fire takes no turn; a heartbeat whose runs keep doing nothing, or
 * keep saying the same thing, pauses until resumed; its runs have their own cost
 * ceiling. Everything here is a pure function of config and stored state, so every
 * process decides alike.
 */

/** What an agent may answer to say "nothing to do": such a run is a no-op whatever else it did. */
export const HEARTBEAT_OK = 'HEARTBEAT_OK';

export const heartbeatSchema = z.strictObject({
  /** Memory scopes (`team/accounts`, `team/accounts/*`, `*`), `agent:<name>` (its runs), `channel:<name>` (its envelopes). */
  watch: z.array(z.string().min(1).max(256)).max(64).optional(),
  /** A fire with no new activity in `watch` since the last one takes no turn (default true). */
  skipIfIdle: z.boolean().optional(),
  /** A per-run cost ceiling on this heartbeat's runs; reaching it fails the run. */
  maxCostUsd: z.number().nonnegative().optional(),
  /** Pause after this many no-op runs in a row. */
  pauseAfterNoops: z.number().int().min(1).max(1000).optional(),
  /** Pause after this many runs in a row with the same output. */
  pauseAfterIdenticalOutputs: z.number().int().min(1).max(1000).optional(),
  /** The answer that means "nothing to do" (default HEARTBEAT_OK). */
  okText: z.string().min(1).max(256).optional(),
});

export type HeartbeatConfig = z.infer<typeof heartbeatSchema>;

export interface Watch {
  scopes: ScopeMatch[];
  agents: string[];
  channels: string[];
}

export interface HeartbeatSpec {
  /** As written, for `spine schedules` and the audit trail. */
  watchList: string[];
  watch: Watch;
  skipIfIdle: boolean;
  maxCostUsd: number | null;
  pauseAfterNoops: number | null;
  pauseAfterIdenticalOutputs: number | null;
  okText: string;
}

/** The origin a schedule's runs carry: policy, memory and the heartbeat's own bookkeeping see it. */
export function scheduleOrigin(id: string, heartbeat: boolean): string {
  return `${heartbeat ? 'heartbeat' : 'schedule'}:${id}`;
}

/** Checks and compiles `schedules.<id>.heartbeat`; problems go to `issues` under `path`. */
export function compileHeartbeat(cfg: HeartbeatConfig, path: string, issues: FieldIssue[], agentNames?: readonly string[]): HeartbeatSpec {
  const watch: Watch = { scopes: [], agents: [], channels: [] };
  (cfg.watch ?? []).forEach((w, i) => {
    const at = `${path}.watch.${i}`;
    if (w.startsWith('agent:')) {
      const name = w.slice('agent:'.length);
      if (agentNames && !agentNames.includes(name)) issues.push({ path: at, message: `unknown agent "${name}" (known: ${agentNames.join(', ') || 'none'})` });
      else watch.agents.push(name);
    } else if (w.startsWith('channel:')) {
      const name = w.slice('channel:'.length);
      if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) issues.push({ path: at, message: `"${w}": a channel name is letters, digits, _ . or -` });
      else watch.channels.push(name);
    } else {
      const m = watchScope(w);
      if (typeof m === 'string') issues.push({ path: at, message: m });
      else watch.scopes.push(m);
    }
  });
  const skipIfIdle = cfg.skipIfIdle ?? true;
  if (skipIfIdle && (cfg.watch ?? []).length === 0) {
    issues.push({ path: `${path}.watch`, message: "skipIfIdle needs something to watch, e.g. ['team/accounts/*', 'agent:researcher', 'channel:slack'] (or skipIfIdle: false)" });
  }
  return {
    watchList: cfg.watch ?? [],
    watch,
    skipIfIdle,
    maxCostUsd: cfg.maxCostUsd ?? null,
    pauseAfterNoops: cfg.pauseAfterNoops ?? null,
    pauseAfterIdenticalOutputs: cfg.pauseAfterIdenticalOutputs ?? null,
    okText: cfg.okText ?? HEARTBEAT_OK,
  };
}

/** A watched memory pattern: `*`, a scope, or a scope and everything below it (`team/accounts/*`, `team/*`). */
function watchScope(pattern: string): ScopeMatch | string {
  if (pattern === '*') return { all: true };
  const tree = pattern.endsWith('/*');
  const base = tree ? pattern.slice(0, -2) : pattern;
  if (base.includes('*')) return `"${pattern}": "*" may only stand alone or end the pattern as "/*"`;
  if (tree && (SCOPE_KINDS as readonly string[]).includes(base)) return { tree: base };
  const problem = scopeProblem(base);
  if (problem) return `"${pattern}" is not a memory scope, agent:<name> or channel:<name> (${problem})`;
  return tree ? { tree: base } : { exact: base };
}

/** What a heartbeat does at a fire it is due to make. */
export type Beat =
  | { kind: 'fire'; patch: HeartbeatPatch; judged: Judgement | null }
  | { kind: 'skip'; reason: 'idle' | 'busy'; patch: HeartbeatPatch; judged: Judgement | null }
  | { kind: 'pause'; reason: string; patch: HeartbeatPatch; judged: Judgement };

export interface Judgement {
  run: string;
  noop: boolean;
  digest: string;
}

/**
 * Judges the last fire's run (if it finished), then decides this fire:
 *   - the last run still going: skip (busy); a heartbeat never overlaps itself
 *   - a streak reached its limit: pause (no turn, until resumed)
 *   - nothing new in `watch` since the last fire (skipIfIdle): skip (idle)
 *   - else fire
 * `last` is the last run's effects (null when there is none to judge), `active` whether
 * the watched scopes saw activity since `state.since`.
 */
export function decideBeat(hb: HeartbeatSpec, state: HeartbeatState, last: RunEffects | null, active: boolean, now: number): Beat {
  const keep = { since: state.since ?? now, run: state.run, noops: state.noops, identical: state.identical, digest: state.digest };
  if (state.run !== null && last !== null && !(TERMINAL_RUN_STATES as readonly string[]).includes(last.state)) {
    // Its activity stays pending: the watermark does not move.
    return { kind: 'skip', reason: 'busy', patch: { ...keep, skippedAt: now }, judged: null };
  }
  let judged: Judgement | null = null;
  let streak = { noops: state.noops, identical: state.identical, digest: state.digest };
  if (state.run !== null && last !== null) {
    judged = judge(state.run, last, hb.okText);
    streak = {
      noops: judged.noop ? state.noops + 1 : 0,
      identical: judged.digest === state.digest ? state.identical + 1 : 1,
      digest: judged.digest,
    };
  }
  const base = { run: null, ...streak };
  if (judged) {
    const reason =
      hb.pauseAfterNoops !== null && streak.noops >= hb.pauseAfterNoops
        ? `${streak.noops} no-op runs in a row (pauseAfterNoops ${hb.pauseAfterNoops})`
        : hb.pauseAfterIdenticalOutputs !== null && streak.identical >= hb.pauseAfterIdenticalOutputs
          ? `${streak.identical} identical outputs in a row (pauseAfterIdenticalOutputs ${hb.pauseAfterIdenticalOutputs})`
          : null;
    if (reason) return { kind: 'pause', reason, patch: { ...base, since: now, pause: reason }, judged };
  }
  if (hb.skipIfIdle && !active) return { kind: 'skip', reason: 'idle', patch: { ...base, since: now, skippedAt: now }, judged };
  return { kind: 'fire', patch: { ...base, since: now }, judged };
}

/**
 * A run is a no-op when it left no effect — no tool call, memory write or outbound
 * message in its ledger, no handoff (it is one task) — or when it answered the
 * heartbeat's okText. Its digest is of its output (or, failed, of its error code), so a
 * heartbeat failing the same way again and again is "identical" too.
 */
export function judge(run: string, r: RunEffects, okText: string): Judgement {
  const said = r.state === 'succeeded' ? r.output : { failed: r.error?.code ?? r.state };
  const noop = (r.effects === 0 && r.tasks <= 1) || saysOk(r.output, okText);
  return { run, noop, digest: digest(said) };
}

function saysOk(output: Json | null, okText: string): boolean {
  if (typeof output === 'string') return output.trim() === okText;
  if (output !== null && typeof output === 'object' && !Array.isArray(output)) return typeof output.text === 'string' && output.text.trim() === okText;
  return false;
}
