import { z } from 'zod';
import type { FieldIssue } from '../core/issues.ts';
import type { Json } from '../core/types.ts';

/**
 * Rule gates: deterministic predicates on the crossing value, compiled once at
 * config load (regexes included, so a bad one is refused there, naming its field).
 * Every predicate of a rule must hold; each one that does not is a reason.
 */
export const ruleSchema = z.strictObject({
  /** Where in the value to look: `$`, `$.answer`, `$.items[0].name` (default `$`). */
  path: z.string().min(1).optional(),
  /** The value (or its JSON text, if not a string) must match / must not match. */
  regex: z.string().optional(),
  notRegex: z.string().optional(),
  flags: z.string().regex(/^[imsu]*$/, 'flags are some of i, m, s, u').optional(),
  /** Length of a string or an array (of the JSON text otherwise). */
  minLength: z.number().int().nonnegative().optional(),
  maxLength: z.number().int().nonnegative().optional(),
  /** Keys an object must have. */
  requiredKeys: z.array(z.string().min(1)).min(1).optional(),
  /** Claim keys the value's `claims` list (contract spine/claims@1) must contain. */
  requiredClaims: z.array(z.string().min(1)).min(1).optional(),
  /** Terms that must not appear (case-insensitive) anywhere in the value's text. */
  forbidden: z.array(z.string().min(1)).min(1).optional(),
  equals: z.json().optional(),
  oneOf: z.array(z.json()).min(1).optional(),
  gt: z.number().optional(),
  gte: z.number().optional(),
  lt: z.number().optional(),
  lte: z.number().optional(),
  /** Whether the path must exist (default true when any predicate is given). */
  required: z.boolean().optional(),
});
export type RuleConfig = z.infer<typeof ruleSchema>;

type Predicate = (value: Json | undefined) => string | null;
export type CompiledRule = (value: Json) => string[];

const PATH = /^\$((\.[A-Za-z_][A-Za-z0-9_-]*)|(\[\d+\]))*$/;

function parsePath(path: string): (string | number)[] | null {
  if (!PATH.test(path)) return null;
  const out: (string | number)[] = [];
  for (const m of path.slice(1).matchAll(/\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]/g)) out.push(m[1] !== undefined ? m[1] : Number(m[2]));
  return out;
}

function at(value: Json, segments: readonly (string | number)[]): Json | undefined {
  let cur: Json | undefined = value;
  for (const s of segments) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = typeof s === 'number' ? (Array.isArray(cur) ? cur[s] : undefined) : Array.isArray(cur) ? undefined : cur[s];
  }
  return cur;
}

const text = (v: Json): string => (typeof v === 'string' ? v : JSON.stringify(v));

function regex(source: string, flags: string, field: string, issues: FieldIssue[]): RegExp | null {
  try {
    return new RegExp(source, flags);
  } catch (err) {
    issues.push({ path: field, message: `invalid regex: ${err instanceof Error ? err.message : String(err)}` });
    return null;
  }
}

/** Compiles one rule; problems go to `issues` under `field`. */
export function compileRule(rule: RuleConfig, field: string, issues: FieldIssue[]): CompiledRule {
  const path = rule.path ?? '$';
  const segments = parsePath(path);
  if (!segments) issues.push({ path: `${field}.path`, message: `not a JSON path like $.a.b[0] (got "${path}")` });
  const preds: Predicate[] = [];
  const flags = rule.flags ?? '';
  if (rule.regex !== undefined) {
    const re = regex(rule.regex, flags, `${field}.regex`, issues);
    if (re) preds.push((v) => (v !== undefined && re.test(text(v)) ? null : `does not match /${rule.regex}/${flags}`));
  }
  if (rule.notRegex !== undefined) {
    const re = regex(rule.notRegex, flags, `${field}.notRegex`, issues);
    if (re) preds.push((v) => (v !== undefined && re.test(text(v)) ? `matches /${rule.notRegex}/${flags}` : null));
  }
  const length = (v: Json) => (typeof v === 'string' || Array.isArray(v) ? v.length : text(v).length);
  if (rule.minLength !== undefined) preds.push((v) => (v !== undefined && length(v) >= rule.minLength! ? null : `is shorter than ${rule.minLength}`));
  if (rule.maxLength !== undefined) preds.push((v) => (v === undefined || length(v) <= rule.maxLength! ? null : `is longer than ${rule.maxLength}`));
  if (rule.requiredKeys) {
    const keys = rule.requiredKeys;
    preds.push((v) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return `is not an object with keys ${keys.join(', ')}`;
      const missing = keys.filter((k) => !(k in v));
      return missing.length ? `lacks key(s) ${missing.join(', ')}` : null;
    });
  }
  if (rule.requiredClaims) {
    const keys = rule.requiredClaims;
    preds.push((v) => {
      const claims = v !== null && typeof v === 'object' && !Array.isArray(v) ? v.claims : undefined;
      const have = new Set(Array.isArray(claims) ? claims.flatMap((c) => (c && typeof c === 'object' && !Array.isArray(c) && typeof c.key === 'string' ? [c.key] : [])) : []);
      const missing = keys.filter((k) => !have.has(k));
      return missing.length ? `lacks claim(s) ${missing.join(', ')}` : null;
    });
  }
  if (rule.forbidden) {
    const terms = rule.forbidden.map((t) => t.toLowerCase());
    preds.push((v) => {
      if (v === undefined) return null;
      const t = text(v).toLowerCase();
      const found = terms.filter((term) => t.includes(term));
      return found.length ? `contains forbidden term(s) ${found.join(', ')}` : null;
    });
  }
  if (rule.equals !== undefined) {
    const want = JSON.stringify(rule.equals);
    preds.push((v) => (v !== undefined && JSON.stringify(v) === want ? null : `is not ${want}`));
  }
  if (rule.oneOf) {
    const allowed = rule.oneOf.map((o) => JSON.stringify(o));
    preds.push((v) => (v !== undefined && allowed.includes(JSON.stringify(v)) ? null : `is not one of ${allowed.join(', ')}`));
  }
  const num = (op: string, bound: number | undefined, ok: (n: number, b: number) => boolean) => {
    if (bound !== undefined) preds.push((v) => (typeof v === 'number' && ok(v, bound) ? null : `is not a number ${op} ${bound}`));
  };
  num('>', rule.gt, (n, b) => n > b);
  num('>=', rule.gte, (n, b) => n >= b);
  num('<', rule.lt, (n, b) => n < b);
  num('<=', rule.lte, (n, b) => n <= b);
  const required = rule.required ?? preds.length > 0;
  if (preds.length === 0 && rule.required === undefined) issues.push({ path: field, message: 'a rule needs at least one predicate (regex, notRegex, minLength, maxLength, requiredKeys, requiredClaims, forbidden, equals, oneOf, gt, gte, lt, lte, required)' });
  const segs = segments ?? [];
  return (value) => {
    const v = at(value, segs);
    if (v === undefined) return required ? [`${path}: is missing`] : [];
    const reasons: string[] = [];
    for (const p of preds) {
      const r = p(v);
      if (r) reasons.push(`${path}: ${r}`);
    }
    return reasons;
  };
}
