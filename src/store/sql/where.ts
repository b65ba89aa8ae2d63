import type { SqlParam } from './executor.ts';

/** `WHERE a = ? AND b = ?` from the conditions whose value is given. */
export function whereOf(conds: Array<[string, SqlParam | undefined]>): { sql: string; params: SqlParam[] } {
  const given = conds.filter((c): c is [string, SqlParam] => c[1] !== undefined && c[1] !== null && c[1] !== '');
  return { sql: given.length ? `WHERE ${given.map(([c]) => c).join(' AND ')}` : '', params: given.map(([, v]) => v) };
}

/** `?, ?, ?` for an `IN (…)` list of n values. */
export function placeholders(n: number): string {
  return Array.from({ length: n }, () => '?').join(', ');
}
