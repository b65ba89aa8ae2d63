import type { GateCheckVerdict, GateOutcome } from '../core/states.ts';
import type { Json } from '../core/types.ts';
import type { GateSettings, GateVerdict } from './gate.ts';

/** What the boundary does with one check's verdict. */
export interface GateDecision {
  verdict: GateCheckVerdict;
  outcome: GateOutcome;
  reasons: string[];
  /** outcome `fix`: the replacement that crosses instead. */
  fix?: Json;
}

/**
 * A check's verdict (or its error) → the outcome, by the gate's settings. Pure:
 * `reasks` is how often this gate already sent reasons back to this task (the
 * boundary counts them in the store only when a reask is possible).
 */
export function decideOutcome(settings: GateSettings, check: GateVerdict | { error: string }, reasks: number): GateDecision {
  if ('error' in check) {
    const reasons = [`validator error: ${check.error}`];
    return { verdict: 'error', outcome: settings.onError === 'warn' ? 'warn' : 'block', reasons };
  }
  if (check.verdict === 'pass') return { verdict: 'pass', outcome: 'pass', reasons: [] };
  if (check.verdict === 'warn') return { verdict: 'warn', outcome: 'warn', reasons: check.reasons };
  const base = { verdict: 'fail' as const, reasons: check.reasons };
  switch (settings.onFail) {
    case 'warn':
      return { ...base, outcome: 'warn' };
    case 'reask':
      return reasks < settings.maxReasks ? { ...base, outcome: 'reask' } : { ...base, outcome: 'block', reasons: [...check.reasons, `no reasks left (maxReasks ${settings.maxReasks})`] };
    case 'fix':
      return check.fix !== undefined ? { ...base, outcome: 'fix', fix: check.fix } : { ...base, outcome: 'block', reasons: [...check.reasons, 'the check offered no fix'] };
    case 'escalate':
      return { ...base, outcome: 'escalate' };
    case 'block':
      return { ...base, outcome: 'block' };
  }
}

/** The JSON paths where `after` differs from `before` (the audited difference of a fix), at most `max`. */
export function changedPaths(before: Json, after: Json, max = 20, path = '$'): string[] {
  if (before === after) return [];
  const isObj = (v: Json): v is { [k: string]: Json } | Json[] => v !== null && typeof v === 'object';
  if (!isObj(before) || !isObj(after) || Array.isArray(before) !== Array.isArray(after)) return [path];
  const out: string[] = [];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  for (const k of keys) {
    const a = (before as Record<string, Json>)[k];
    const b = (after as Record<string, Json>)[k];
    const sub = Array.isArray(before) ? `${path}[${k}]` : `${path}.${k}`;
    if (a === undefined || b === undefined) out.push(sub);
    else out.push(...changedPaths(a, b, max - out.length, sub));
    if (out.length >= max) break;
  }
  return out.slice(0, max);
}
