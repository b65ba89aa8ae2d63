import type { GateCheckVerdict, GateMode, GateOutcome } from '../core/states.ts';

/**
 * Gate verdicts as queryable records (docs/validation.md). A record is written in the
 * transaction of the `gate.verdict` audit event that carries it, so it exists exactly
 * when that event does, whichever write committed it.
 */
export interface GateVerdictRecord {
  seq: number;
  at: number;
  gate: string;
  crossing: string;
  name: string;
  runId: string | null;
  taskId: string | null;
  agent: string | null;
  key: string;
  mode: GateMode;
  verdict: GateCheckVerdict;
  outcome: GateOutcome;
  reasons: string[];
  inputDigest: string;
  configVersion: string;
}

export interface VerdictFilter {
  runId?: string;
  taskId?: string;
  gate?: string;
  outcome?: GateOutcome;
  mode?: GateMode;
  afterSeq?: number;
  /** Newest first (the dashboard's view); default oldest first, for paging with `afterSeq`. */
  newest?: boolean;
  limit: number;
}

export interface VerdictStore {
  list(filter: VerdictFilter): Promise<GateVerdictRecord[]>;
  /** How many enforced verdicts of one gate on one task had this outcome (reasks spent). */
  count(filter: { taskId: string; gate: string; outcome: GateOutcome }): Promise<number>;
}
