import { parseJson, toJson } from '../../core/json.ts';
import type { GateCheckVerdict, GateMode, GateOutcome } from '../../core/states.ts';
import type { Json } from '../../core/types.ts';
import type { AuditEntry } from '../audit.ts';
import type { GateVerdictRecord, VerdictFilter, VerdictStore } from '../verdicts.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor, SqlParam } from './executor.ts';

interface VerdictRow {
  seq: number | string;
  at: number | string;
  gate: string;
  crossing: string;
  name: string;
  run_id: string | null;
  task_id: string | null;
  agent: string | null;
  effect_key: string;
  mode: string;
  verdict: string;
  outcome: string;
  reasons: string;
  input_digest: string;
  config_version: string;
}

function toRecord(r: VerdictRow): GateVerdictRecord {
  return {
    seq: Number(r.seq),
    at: Number(r.at),
    gate: r.gate,
    crossing: r.crossing,
    name: r.name,
    runId: r.run_id,
    taskId: r.task_id,
    agent: r.agent,
    key: r.effect_key,
    mode: r.mode as GateMode,
    verdict: r.verdict as GateCheckVerdict,
    outcome: r.outcome as GateOutcome,
    reasons: parseJson<string[]>(r.reasons) ?? [],
    inputDigest: r.input_digest,
    configVersion: r.config_version,
  };
}

const str = (d: Record<string, Json>, k: string): string => (typeof d[k] === 'string' ? (d[k]) : '');

/** Writes a gate_verdicts row for each `gate.verdict` entry; called by insertAudit, in its transaction. */
export async function insertVerdicts(tx: SqlExecutor, now: number, entries: readonly AuditEntry[]): Promise<void> {
  for (const e of entries) {
    if (e.kind !== 'gate.verdict' || !e.data || typeof e.data !== 'object' || Array.isArray(e.data)) continue;
    const d = e.data;
    await tx.run(
      'INSERT INTO gate_verdicts (at, gate, crossing, name, run_id, task_id, agent, effect_key, mode, verdict, outcome, reasons, input_digest, config_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [
        now,
        str(d, 'gate'),
        str(d, 'crossing'),
        str(d, 'name'),
        e.runId ?? null,
        e.taskId ?? null,
        e.agent ?? null,
        str(d, 'key'),
        str(d, 'mode') || 'enforce',
        str(d, 'verdict'),
        str(d, 'outcome'),
        toJson(d.reasons ?? []),
        str(d, 'inputDigest'),
        str(d, 'configVersion'),
      ],
    );
  }
}

export function sqlVerdictStore(db: SqlBackend): VerdictStore {
  return {
    async list(f: VerdictFilter): Promise<GateVerdictRecord[]> {
      const where: string[] = ['seq > ?'];
      const params: SqlParam[] = [f.afterSeq ?? 0];
      const eq = (col: string, v: string | undefined) => {
        if (v === undefined) return;
        where.push(`${col} = ?`);
        params.push(v);
      };
      eq('run_id', f.runId);
      eq('task_id', f.taskId);
      eq('gate', f.gate);
      eq('outcome', f.outcome);
      eq('mode', f.mode);
      params.push(f.limit);
      const rows = await db.read.all<VerdictRow>(`SELECT * FROM gate_verdicts WHERE ${where.join(' AND ')} ORDER BY seq${f.newest ? ' DESC' : ''} LIMIT ?`, params);
      return rows.map(toRecord);
    },
    async count(f): Promise<number> {
      const row = await db.read.get<{ n: number | string }>("SELECT COUNT(*) AS n FROM gate_verdicts WHERE task_id = ? AND gate = ? AND outcome = ? AND mode = 'enforce'", [f.taskId, f.gate, f.outcome]);
      return Number(row?.n ?? 0);
    },
  };
}
