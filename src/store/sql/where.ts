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

/** Rows per multi-row statement: few distinct statement texts, and far from any parameter limit. */
export const ROWS_PER_STATEMENT = 32;

const rowMarks = new Map<string, string>();
/** `row` n times, comma-separated, for a multi-row VALUES (cached: the same few lists recur). */
export function valuesOf(n: number, row: string): string {
  const key = `${n}|${row}`;
  let text = rowMarks.get(key);
  if (text === undefined) rowMarks.set(key, (text = Array.from({ length: n }, () => row).join(', ')));
  return text;
}

/** `items` in slices of at most ROWS_PER_STATEMENT. */
export function* slices<T>(items: readonly T[]): Generator<T[]> {
  for (let i = 0; i < items.length; i += ROWS_PER_STATEMENT) yield items.slice(i, i + ROWS_PER_STATEMENT);
}
