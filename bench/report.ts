/**
 * Turns workload results into figures with their durability, targets and rivals,
 * and renders them as an aligned plain-text table (or JSON rows).
 */
import type { Durability } from '../src/store/store.ts';
import type { RawResult } from './raw-sqlite.ts';
import type { W1Result, W2Summary, W3Result } from './workloads.ts';

export const DURABILITIES: readonly Durability[] = ['strict', 'fast'];

export interface DurabilityResults {
  raw?: RawResult;
  w1?: W1Result;
  w2?: W2Summary;
  w3?: W3Result;
  errors: Record<string, string>;
}

export type Results = Record<Durability, DurabilityResults>;

interface Target {
  op: '<=' | '>=' | '<';
  value: number;
}

interface FigureDef {
  workload: string;
  metric: string;
  unit: string;
  digits: number;
  pick: (r: DurabilityResults) => number | undefined;
  target?: Target;
  rivals?: string;
}

export interface Figure {
  workload: string;
  metric: string;
  durability: Durability;
  value: number | null;
  unit: string;
  target: string | null;
  status: 'met' | 'missed' | null;
  rivals: string | null;
}

const FIGURES: FigureDef[] = [
  {
    workload: 'W1',
    metric: 'per-turn overhead p50, 1 run at a time',
    unit: 'ms',
    digits: 3,
    pick: (r) => r.w1?.perTurnMs.p50,
    target: { op: '<=', value: 0.5 },
    rivals: 'durable step: LangGraph.js+SQLite 1.5 ms, DBOS 2.6 ms, bare node:sqlite task table 0.22 ms',
  },
  { workload: 'W1', metric: 'per-turn overhead p99, 1 run at a time', unit: 'ms', digits: 3, pick: (r) => r.w1?.perTurnMs.p99, target: { op: '<=', value: 3 } },
  { workload: 'W1', metric: 'one 10-turn run, submit → succeeded, p50', unit: 'ms', digits: 2, pick: (r) => r.w1?.runLatencyMs.p50 },
  { workload: 'W1', metric: 'runs/s, batch submitted together (c=8)', unit: 'runs/s', digits: 0, pick: (r) => r.w1?.runsPerSec },
  { workload: 'W1', metric: 'turns/s, same batch', unit: 'turns/s', digits: 0, pick: (r) => r.w1?.turnsPerSec },
  {
    workload: 'W2',
    metric: 'no-op tasks/s end to end (submit → last done), median run',
    unit: 'tasks/s',
    digits: 0,
    pick: (r) => r.w2?.endToEndPerSec,
    target: { op: '>=', value: 5_000 },
    rivals: '10k no-op tasks: graphile-worker 19k/s, BullMQ 3.8k/s, pg-boss 1.5k/s',
  },
  { workload: 'W2', metric: 'submit phase alone (Promise.all), median run', unit: 'tasks/s', digits: 0, pick: (r) => r.w2?.submitPerSec },
  { workload: 'W2', metric: 'processing phase alone (1 worker, c=8), median run', unit: 'tasks/s', digits: 0, pick: (r) => r.w2?.processPerSec },
  { workload: 'W2', metric: 'CPU per task while processing, median run', unit: 'µs', digits: 0, pick: (r) => r.w2?.processCpuUsPerTask },
  { workload: 'W2', metric: 'RSS after queueing, before worker start, worst run', unit: 'MB', digits: 1, pick: (r) => r.w2?.rssQueuedWorstMb, target: { op: '<', value: 150 } },
  { workload: 'W2', metric: 'peak RSS during processing, worst run', unit: 'MB', digits: 1, pick: (r) => r.w2?.rssPeakWorstMb, target: { op: '<', value: 150 } },
  { workload: 'W2', metric: 'peak RSS during processing, median run', unit: 'MB', digits: 1, pick: (r) => r.w2?.rssPeakMb, target: { op: '<', value: 150 } },
  {
    workload: 'W3',
    metric: 'fan-out 100 + join, submit → succeeded, p50',
    unit: 'ms',
    digits: 1,
    pick: (r) => r.w3?.totalMs.p50,
    target: { op: '<=', value: 100 },
    rivals: 'fan-out 100 + join: LangGraph 92 ms, bare SQLite 8.5 ms',
  },
  { workload: 'W3', metric: 'fan-out 100 + join, max', unit: 'ms', digits: 1, pick: (r) => r.w3?.totalMs.max },
  { workload: 'raw', metric: 'node:sqlite BEGIN IMMEDIATE;INSERT;UPDATE;COMMIT', unit: 'tx/s', digits: 0, pick: (r) => r.raw?.txPerSec },
  { workload: 'raw', metric: 'same, per transaction p50', unit: 'ms', digits: 3, pick: (r) => r.raw?.perTxMs.p50 },
];

function targetText(t: Target, unit: string): string {
  const op = t.op === '<=' ? '≤' : t.op === '>=' ? '≥' : '<';
  return `${op} ${formatNumber(t.value, t.value >= 1000 ? 0 : t.value < 1 ? 1 : 0)} ${unit}`;
}

function meets(t: Target, v: number): boolean {
  return t.op === '<=' ? v <= t.value : t.op === '>=' ? v >= t.value : v < t.value;
}

function formatNumber(v: number | null, digits: number): string {
  if (v === null || !Number.isFinite(v)) return 'n/a';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Every figure for every durability, as flat records (what --json prints). */
export function figures(results: Results, durabilities: readonly Durability[]): Figure[] {
  const out: Figure[] = [];
  for (const def of FIGURES) {
    for (const d of durabilities) {
      const v = def.pick(results[d]);
      out.push({
        workload: def.workload,
        metric: def.metric,
        durability: d,
        value: v === undefined || !Number.isFinite(v) ? null : v,
        unit: def.unit,
        target: def.target ? targetText(def.target, def.unit) : null,
        status: def.target && v !== undefined && Number.isFinite(v) ? (meets(def.target, v) ? 'met' : 'missed') : null,
        rivals: def.rivals ?? null,
      });
    }
  }
  return out;
}

/** Aligned table: one line per metric, one value and status column per durability. */
export function renderTable(results: Results, durabilities: readonly Durability[]): string {
  const header = ['workload', 'metric', ...durabilities.map((d) => `${d}`), 'target', ...durabilities.map((d) => `${d}?`), 'rivals (context)'];
  const right = new Set([2, ...durabilities.map((_, i) => 2 + i)]);
  const rows: string[][] = [];
  let lastWorkload = '';
  for (const def of FIGURES) {
    const values = durabilities.map((d) => {
      const v = def.pick(results[d]);
      return v === undefined || v === null ? '—' : `${formatNumber(v, def.digits)} ${def.unit}`;
    });
    if (values.every((v) => v === '—')) continue;
    const status = durabilities.map((d) => {
      const v = def.pick(results[d]);
      if (!def.target || v === undefined || v === null || !Number.isFinite(v)) return '';
      return meets(def.target, v) ? 'met' : 'MISSED';
    });
    rows.push([
      def.workload === lastWorkload ? '' : def.workload,
      def.metric,
      ...values,
      def.target ? targetText(def.target, def.unit) : '',
      ...status,
      def.rivals ?? '',
    ]);
    lastWorkload = def.workload;
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Context lines under the table: what each durability means, sizes, breakdowns and sanity checks. */
export function renderNotes(results: Results, durabilities: readonly Durability[]): string {
  const lines: string[] = [];
  lines.push('durability: strict = synchronous=FULL, fsync on every commit (the default); fast = synchronous=NORMAL (WAL), survives kill -9, not power loss.');
  lines.push('Each value column is measured at the durability named in its header; every workload was run on each.');
  for (const d of durabilities) {
    const r = results[d];
    const parts: string[] = [];
    if (r.w1) {
      parts.push(
        `W1 ${r.w1.latencyRuns} runs one at a time (${r.w1.perTurnMs.n} turn gaps: mean ${r.w1.perTurnMs.mean} p90 ${r.w1.perTurnMs.p90} max ${r.w1.perTurnMs.max} ms), batch ${r.w1.batchRuns} runs in ${formatNumber(r.w1.batchMs, 0)} ms`,
      );
    }
    if (r.w2) {
      parts.push(
        `W2 ${r.w2.runs} run(s) of ${r.w2.tasks} tasks, each in a fresh process; end-to-end tasks/s per run: ${r.w2.endToEndPerSecAll.map((v) => formatNumber(v, 0)).join(', ')}`,
        `W2 median run: submit ${formatNumber(r.w2.submitMs, 0)} ms + process ${formatNumber(r.w2.processMs, 0)} ms; CPU busy ${r.w2.processCpuPct}% of one core while processing; CPU per task: submit ${r.w2.submitCpuUsPerTask} µs, process ${r.w2.processCpuUsPerTask} µs; RSS before submit ${r.w2.rssBeforeMb} MB, heap used after queueing ${r.w2.heapQueuedMb} MB`,
      );
    }
    if (r.w3) {
      parts.push(
        `W3 ${r.w3.reps} reps, p50 breakdown: submit → parent turn 1 ${r.w3.toFirstTurnMs.p50} ms, turn 1 → turn 2 (fan-out commit, ${r.w3.children} children, join) ${r.w3.fanOutJoinMs.p50} ms, turn 2 → succeeded ${r.w3.finalCommitMs.p50} ms`,
      );
    }
    if (r.raw) parts.push(`raw ${r.raw.transactions} transactions in ${formatNumber(r.raw.elapsedMs, 0)} ms (synchronous=${r.raw.synchronous})`);
    const checks = (['w1', 'w2', 'w3'] as const).flatMap((k) => {
      const c = r[k]?.check;
      if (!c) return [];
      const bad = Object.entries(c).filter(([s]) => s !== 'succeeded');
      return [`${k.toUpperCase()} ${c.succeeded ?? 0} succeeded${bad.length ? ' ' + bad.map(([s, n]) => `${n} ${s}`).join(' ') : ''}`];
    });
    if (r.w3 && r.w3.badJoins > 0) checks.push(`W3 ${r.w3.badJoins} joins without all ${r.w3.children} results`);
    if (checks.length) parts.push(`runs in the store afterwards: ${checks.join(', ')}`);
    for (const [w, e] of Object.entries(r.errors)) parts.push(`${w} FAILED: ${e}`);
    if (parts.length) lines.push(`[${d}]`, ...parts.map((p) => `  ${p}`));
  }
  return lines.join('\n');
}
