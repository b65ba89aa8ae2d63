import type { Run, Task } from '../core/types.ts';

/** Renders rows as an aligned plain-text table. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)].join('\n');
}

/** A newest-first page of `limit` rows: the id to pass as `--before` for the next page, or null on the last. */
export function nextCursor(rows: ReadonlyArray<{ id: string }>, limit: number): string | null {
  return rows.length === limit ? (rows.at(-1)?.id ?? null) : null;
}

/** A page's table, with the command for the next page when there may be one. */
export function withMore(out: string, rows: ReadonlyArray<{ id: string }>, limit: number): string {
  const next = nextCursor(rows, limit);
  return next === null ? out : `${out}\n(more: --before ${next})`;
}

export function when(ms: number | null): string {
  if (ms === null) return '-';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function duration(run: { createdAt: number; finishedAt: number | null }): string {
  if (run.finishedAt === null) return '-';
  const ms = run.finishedAt - run.createdAt;
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function short(value: unknown, max = 60): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  if (text === undefined) return '';
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

/** The run's task tree, one line per task, children indented under their parent. */
export function taskTree(tasks: Task[]): string {
  const byParent = new Map<string | null, Task[]>();
  for (const t of tasks) {
    const list = byParent.get(t.parentId) ?? [];
    list.push(t);
    byParent.set(t.parentId, list);
  }
  const lines: string[] = [];
  const walk = (parent: string | null, prefix: string) => {
    const kids = (byParent.get(parent) ?? []).sort((a, b) => (a.parentTurn ?? 0) - (b.parentTurn ?? 0) || (a.parentAction ?? 0) - (b.parentAction ?? 0));
    kids.forEach((t, i) => {
      const last = i === kids.length - 1;
      const branch = parent === null ? '' : last ? '└─ ' : '├─ ';
      const detail = t.state === 'succeeded' ? short(t.output, 50) : t.error ? `${t.error.code}: ${short(t.error.message, 60)}` : '';
      lines.push(`${prefix}${branch}${t.agent} [${t.state}] ${t.id} turns=${t.turns}${detail ? '  ' + detail : ''}`);
      walk(t.id, parent === null ? prefix : prefix + (last ? '   ' : '│  '));
    });
  };
  walk(null, '');
  return lines.join('\n');
}

export function runLine(run: Run): string {
  return `${run.id}  ${run.agent}  ${run.state}  ${duration(run)}`;
}

/** Gate verdicts (`spine gates verdicts`, `spine runs show`). */
export function verdictTable(rows: Array<{ at: number; gate: string; crossing: string; name: string; mode: string; verdict: string; outcome: string; reasons: string[] }>): string {
  return table(
    ['AT', 'GATE', 'CROSSING', 'WHAT', 'VERDICT', 'OUTCOME', 'WHY'],
    rows.map((v) => [when(v.at), v.gate, v.crossing, v.name, v.verdict, v.mode === 'shadow' ? `${v.outcome} (shadow)` : v.outcome, v.reasons.join('; ')]),
  );
}
