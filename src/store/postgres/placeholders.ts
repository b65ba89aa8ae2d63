/**
 * The shared SQL uses `?` placeholders (node:sqlite's form); PostgreSQL wants `$1, $2, …`.
 * The translation skips string literals, quoted identifiers and comments, so a `?`
 * inside them is left alone. Results are cached per SQL text: the shared store has a
 * bounded set of statements, so each is translated once per process.
 */

const cache = new Map<string, string>();
/** Beyond this many distinct texts (a caller building unbounded SQL), stop caching. */
const MAX_CACHED = 5_000;

export function toPgPlaceholders(sql: string): string {
  const hit = cache.get(sql);
  if (hit !== undefined) return hit;
  const out = translate(sql);
  if (cache.size < MAX_CACHED) cache.set(sql, out);
  return out;
}

function translate(sql: string): string {
  if (!sql.includes('?')) return sql;
  let out = '';
  let n = 0;
  let i = 0;
  const len = sql.length;
  while (i < len) {
    const ch = sql[i]!;
    if (ch === "'" || ch === '"') {
      // A quoted literal or identifier; a doubled quote inside it is an escaped quote.
      let j = i + 1;
      for (;;) {
        if (j >= len) break;
        if (sql[j] === ch) {
          if (sql[j + 1] === ch) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      out += sql.slice(i, j + 1);
      i = j + 1;
    } else if (ch === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end === -1 ? len : end;
      out += sql.slice(i, stop);
      i = stop;
    } else if (ch === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      const stop = end === -1 ? len : end + 2;
      out += sql.slice(i, stop);
      i = stop;
    } else if (ch === '?') {
      out += `$${++n}`;
      i++;
    } else {
      out += ch;
      i++;
    }
  }
  return out;
}
