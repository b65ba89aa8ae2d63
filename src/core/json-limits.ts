/**
 * Limits every JSON input meets at the door, checked right after parsing and before
 * anything else looks at the value: nesting depth, number of values, and NUL
 * characters (PostgreSQL cannot store U+0000 in text or jsonb, so both backends refuse
 * it alike). The walk is iterative: a hostile document cannot overflow the stack here.
 */
export const JSON_LIMITS = {
  /** Deepest nesting of arrays and objects. */
  maxDepth: 64,
  /** Most values (objects, arrays, strings, numbers, …) in one document. */
  maxNodes: 100_000,
} as const;

export interface JsonLimitProblem {
  /** Which limit: `depth`, `nodes` or `nul`. */
  limit: 'depth' | 'nodes' | 'nul';
  /** JSON path of the offending value (dotted; `(root)` for the whole document). */
  path: string;
  message: string;
}

/** The first limit a parsed JSON value breaks, or null. */
export function jsonLimitProblem(value: unknown, limits: { maxDepth: number; maxNodes: number } = JSON_LIMITS, opts: { nul?: boolean } = {}): JsonLimitProblem | null {
  const nul = opts.nul ?? true;
  const stack: Array<{ v: unknown; depth: number; path: string }> = [{ v: value, depth: 0, path: '' }];
  let nodes = 0;
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    if (++nodes > limits.maxNodes) return { limit: 'nodes', path: path || '(root)', message: `more than ${limits.maxNodes} JSON values in one document` };
    if (typeof v === 'string') {
      if (nul && v.includes('\u0000')) return { limit: 'nul', path: path || '(root)', message: 'contains a NUL character (U+0000), which cannot be stored' };
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth >= limits.maxDepth) return { limit: 'depth', path: path || '(root)', message: `nested deeper than ${limits.maxDepth} levels` };
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], depth: depth + 1, path: path ? `${path}.${i}` : String(i) });
    } else {
      for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
        if (nul && k.includes('\u0000')) return { limit: 'nul', path: path || '(root)', message: 'has a key with a NUL character (U+0000), which cannot be stored' };
        stack.push({ v: child, depth: depth + 1, path: path ? `${path}.${k}` : k });
      }
    }
  }
  return null;
}

/** A copy with every U+0000 in strings and keys replaced by U+FFFD (verified channel payloads are kept, not refused). */
export function replaceNul<T>(value: T): T {
  if (typeof value === 'string') return (value.includes('\u0000') ? value.replaceAll('\u0000', '\uFFFD') : value) as T;
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(replaceNul) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k.replaceAll('\u0000', '\uFFFD')] = replaceNul(v);
  return out as T;
}
