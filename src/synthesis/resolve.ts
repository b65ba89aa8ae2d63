import type { Candidate, Conflict, Decider, ResolutionStep, Strategy } from '../core/brief.ts';
import type { Json } from '../core/types.ts';
import { matches } from '../core/patterns.ts';
import { normal } from './detect.ts';

/**
 * Resolution chains: for each conflicting key, the first rule whose pattern matches
 * gives a chain of strategies, tried in order until one decides. Rule strategies
 * (priority, vote, confidence, keep-both) are pure functions of the candidates; a
 * judge (an agent the hub dispatches) and a human (an approval) answer later, so
 * `advance` says what it needs and is called again with the answer. Every attempt
 * is kept on the conflict, with who decided.
 */

export interface ResolveRule {
  match: string;
  chain: Strategy[];
}

/** The rule for a key: the first that matches; none matching keeps both values (unresolved). */
export function ruleFor(key: string, rules: readonly ResolveRule[]): ResolveRule {
  return rules.find((r) => matches(r.match, key)) ?? { match: '(none)', chain: [{ strategy: 'keep-both' }] };
}

export function newConflict(key: string, candidates: Candidate[], rule: string): Conflict {
  return { key, candidates, rule, step: 0, steps: [], pending: null, decision: null, unresolved: false };
}

type RuleResult = { decided: Json; note?: string } | { pass: ResolutionStep['outcome']; note?: string };

/** A rule strategy applied to the candidates. */
export function applyRule(s: Extract<Strategy, { strategy: 'priority' | 'vote' | 'confidence' }>, candidates: readonly Candidate[]): RuleResult {
  switch (s.strategy) {
    case 'priority': {
      for (const agent of s.order) {
        const hit = candidates.filter((c) => c.from.some((f) => f.agent === agent));
        if (hit.length === 1) return { decided: hit[0]!.value, note: `${agent} ranks first` };
        if (hit.length > 1) return { pass: 'tie', note: `${agent} claims ${hit.length} values` };
      }
      return { pass: 'no-match', note: 'no candidate comes from an agent in the order' };
    }
    case 'vote': {
      const counts = candidates.map((c) => c.from.length);
      const top = Math.max(...counts);
      const winners = candidates.filter((c) => c.from.length === top);
      if (winners.length === 1) return { decided: winners[0]!.value, note: `${top} of ${counts.reduce((a, b) => a + b, 0)} claims` };
      return { pass: 'tie', note: `${winners.length} values with ${top} claims each` };
    }
    case 'confidence': {
      const best = candidates.map((c) => Math.max(...c.from.map((f) => f.confidence ?? 0)));
      const top = Math.max(...best);
      if (top < s.min) return { pass: 'below-min', note: `highest confidence ${top} < ${s.min}` };
      const winners = candidates.filter((_, i) => best[i] === top);
      if (winners.length === 1) return { decided: winners[0]!.value, note: `confidence ${top}` };
      return { pass: 'tie', note: `${winners.length} values at confidence ${top}` };
    }
  }
}

/** What the hub knows about a judge task or an approval in flight. */
export interface Answers {
  judge?: { state: 'pending' } | { state: 'succeeded'; output: Json; agent: string; task: string; turn: number } | { state: 'failed'; code: string };
  approval?: { state: 'pending' } | { state: 'approved'; id: string; actor: string; choice: number | null } | { state: 'denied' | 'expired' | 'cancelled'; id: string; actor: string };
}

/** What the hub must do before the conflict can go on. */
export type Need = null | { judge: Extract<Strategy, { strategy: 'judge' }> } | { human: Extract<Strategy, { strategy: 'human' }> } | { wait: 'judge' | 'approval' };

/**
 * Moves one conflict along its chain as far as it can go now. Returns the updated
 * conflict (a copy) and what it needs: a judge task or an approval to be created
 * (the hub records its id in `pending` in the same commit), an answer still being
 * awaited, or nothing (decided or unresolved).
 */
export function advance(input: Conflict, chain: readonly Strategy[], answers: Answers = {}): { conflict: Conflict; need: Need } {
  // A copy of what changes (candidates are never changed: they stay shared).
  const c: Conflict = { ...input, steps: [...input.steps], pending: input.pending ? { ...input.pending } : null };
  const next = (outcome: ResolutionStep['outcome'], strategy: Strategy['strategy'], note?: string) => {
    c.steps.push({ strategy, outcome, ...(note === undefined ? {} : { note }) });
    c.step++;
    c.pending = null;
  };
  const decide = (strategy: Strategy['strategy'], value: Json, decider: Decider, note?: string) => {
    c.steps.push({ strategy, outcome: 'decided', ...(note === undefined ? {} : { note }) });
    c.decision = { strategy, value: normal(value), decider };
    c.pending = null;
  };
  while (!c.decision && !c.unresolved) {
    const s = chain[c.step];
    if (!s) {
      c.unresolved = true;
      break;
    }
    switch (s.strategy) {
      case 'priority':
      case 'vote':
      case 'confidence': {
        const r = applyRule(s, c.candidates);
        if ('decided' in r) decide(s.strategy, r.decided, { kind: 'rule', rule: `${c.rule} → ${s.strategy}` }, r.note);
        else next(r.pass, s.strategy, r.note);
        break;
      }
      case 'keep-both':
        c.steps.push({ strategy: 'keep-both', outcome: 'kept-both' });
        c.unresolved = true;
        break;
      case 'judge': {
        if (!c.pending?.judge) return { conflict: c, need: { judge: s } };
        const a = answers.judge;
        if (!a || a.state === 'pending') return { conflict: c, need: { wait: 'judge' } };
        if (a.state === 'failed') {
          next('failed', 'judge', a.code);
          break;
        }
        const out = a.output;
        const verdict = out !== null && typeof out === 'object' && !Array.isArray(out) ? out : {};
        if (verdict.decision === 'decided' && 'value' in verdict) {
          const rationale = typeof verdict.rationale === 'string' ? verdict.rationale : undefined;
          decide('judge', verdict.value, { kind: 'agent', agent: a.agent, task: a.task, turn: a.turn }, rationale);
        } else next('abstained', 'judge', typeof verdict.rationale === 'string' ? verdict.rationale : undefined);
        break;
      }
      case 'human': {
        if (!c.pending?.approval) return { conflict: c, need: { human: s } };
        const a = answers.approval;
        if (!a || a.state === 'pending') return { conflict: c, need: { wait: 'approval' } };
        if (a.state !== 'approved') {
          next(a.state, 'human', `${a.state} by ${a.actor}`);
          break;
        }
        const chosen = c.candidates[(a.choice ?? 1) - 1] ?? c.candidates[0]!;
        decide('human', chosen.value, { kind: 'human', actor: a.actor, approval: a.id }, `option ${a.choice ?? 1}`);
        break;
      }
    }
  }
  return { conflict: c, need: null };
}

/** The option a person picked when approving: `--reason "2"` or "option 2: …" (1-based); none means option 1. */
export function choiceOf(reason: string | null, options: number): number | null {
  const m = /^\s*(?:option|choice|pick)?\s*#?(\d+)\b/i.exec(reason ?? '');
  if (!m) return null;
  const n = Number(m[1]);
  return n >= 1 && n <= options ? n : null;
}
