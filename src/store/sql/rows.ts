import { parseJson } from '../../core/json.ts';
import type { Action, ActionResult, ErrorInfo, Json, Run, RunState, Task, TaskState, TurnRecord, Usage } from '../../core/types.ts';
import type { AuditEvent, EffectRecord, WorkerInfo } from '../store.ts';

/** Rows as the database returns them (snake_case; integers may arrive as strings from pg). */
export interface RunRow {
  id: string;
  idempotency_key: string | null;
  agent: string;
  state: string;
  input: string;
  output: string | null;
  error: string | null;
  root_task_id: string;
  tenant: string;
  envelope_id: string | null;
  session_key: string | null;
  session_seq: number | string | null;
  session_epoch: number | string | null;
  kind: string;
  created_at: number | string;
  updated_at: number | string;
  finished_at: number | string | null;
}

export interface TaskRow {
  id: string;
  run_id: string;
  parent_id: string | null;
  parent_turn: number | string | null;
  parent_action: number | string | null;
  depth: number | string;
  agent: string;
  state: string;
  input: string;
  output: string | null;
  error: string | null;
  turns: number | string;
  waiting_on: number | string;
  attempt: number | string;
  max_attempts: number | string;
  reclaims: number | string;
  lease_no: number | string;
  lease_owner: string | null;
  lease_expires_at: number | string | null;
  run_at: number | string;
  created_at: number | string;
  updated_at: number | string;
  finished_at: number | string | null;
}

export interface TurnRow {
  task_id: string;
  n: number | string;
  state: string;
  actions: string;
  results: string | null;
  output: string | null;
  usage: string | null;
}

export interface EffectRow {
  key: string;
  run_id: string;
  task_id: string;
  turn: number | string;
  action: number | string;
  tool: string;
  input_digest: string;
  state: string;
  attempts: number | string;
  result: string | null;
  error: string | null;
  started_at: number | string;
  completed_at: number | string | null;
}

export interface AuditRow {
  seq: number | string;
  at: number | string;
  kind: string;
  run_id: string | null;
  task_id: string | null;
  agent: string | null;
  actor: string | null;
  digest: string | null;
  data: string | null;
}

export interface WorkerRow {
  id: string;
  pid: number | string;
  host: string;
  started_at: number | string;
  heartbeat_at: number | string;
  stopped_at: number | string | null;
}

const num = (v: number | string): number => (typeof v === 'number' ? v : Number(v));
const numOrNull = (v: number | string | null): number | null => (v === null ? null : num(v));

export function toRun(r: RunRow): Run {
  return {
    id: r.id,
    agent: r.agent,
    state: r.state as RunState,
    input: parseJson(r.input) ?? null,
    output: parseJson(r.output),
    error: parseJson<ErrorInfo>(r.error),
    rootTaskId: r.root_task_id,
    tenant: r.tenant,
    envelopeId: r.envelope_id,
    sessionKey: r.session_key,
    kind: r.kind as Run['kind'],
    idempotencyKey: r.idempotency_key,
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    finishedAt: numOrNull(r.finished_at),
  };
}

export function toTask(r: TaskRow): Task {
  return {
    id: r.id,
    runId: r.run_id,
    parentId: r.parent_id,
    parentTurn: numOrNull(r.parent_turn),
    parentAction: numOrNull(r.parent_action),
    depth: num(r.depth),
    agent: r.agent,
    state: r.state as TaskState,
    input: parseJson(r.input) ?? null,
    output: parseJson(r.output),
    error: parseJson<ErrorInfo>(r.error),
    turns: num(r.turns),
    waitingOn: num(r.waiting_on),
    attempt: num(r.attempt),
    maxAttempts: num(r.max_attempts),
    reclaims: num(r.reclaims),
    leaseNo: num(r.lease_no),
    leaseOwner: r.lease_owner,
    leaseExpiresAt: numOrNull(r.lease_expires_at),
    runAt: num(r.run_at),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    finishedAt: numOrNull(r.finished_at),
  };
}

export function toEffect(r: EffectRow): EffectRecord {
  return {
    key: r.key,
    runId: r.run_id,
    taskId: r.task_id,
    turn: num(r.turn),
    action: num(r.action),
    tool: r.tool,
    inputDigest: r.input_digest,
    state: r.state as EffectRecord['state'],
    attempts: num(r.attempts),
    result: parseJson(r.result),
    error: parseJson<ErrorInfo>(r.error),
    startedAt: num(r.started_at),
    completedAt: numOrNull(r.completed_at),
  };
}

export function toAuditEvent(r: AuditRow): AuditEvent {
  const ev: AuditEvent = {
    seq: num(r.seq),
    at: num(r.at),
    kind: r.kind,
    runId: r.run_id,
    taskId: r.task_id,
    agent: r.agent,
    actor: r.actor,
    digest: r.digest,
  };
  const data = parseJson(r.data);
  if (data !== null) ev.data = data;
  return ev;
}

export function toWorker(r: WorkerRow): WorkerInfo {
  return {
    id: r.id,
    pid: num(r.pid),
    host: r.host,
    startedAt: num(r.started_at),
    heartbeatAt: num(r.heartbeat_at),
    stoppedAt: numOrNull(r.stopped_at),
  };
}

export interface ChildOutcomeRow {
  id: string;
  parent_turn: number | string | null;
  parent_action: number | string | null;
  state: string;
  output: string | null;
  error: string | null;
}

/**
 * Rebuilds a task's history from its turn rows, filling each handoff's result from
 * the child task's final state (children finish after the parent's turn commits).
 */
export function assembleTurns(rows: TurnRow[], children: ChildOutcomeRow[]): { committed: TurnRecord[]; open: TurnRow | null } {
  const byPlace = new Map<string, ChildOutcomeRow>();
  for (const c of children) byPlace.set(`${c.parent_turn}/${c.parent_action}`, c);
  const committed: TurnRecord[] = [];
  let open: TurnRow | null = null;
  for (const row of rows) {
    if (row.state !== 'committed') {
      open = row;
      continue;
    }
    const n = num(row.n);
    const results = (parseJson<ActionResult[]>(row.results) ?? []).map((res) => {
      if (res.type !== 'handoff' || res.taskId === undefined) return res;
      const child = byPlace.get(`${n}/${res.index}`);
      return child ? childResult(res, child) : res;
    });
    const rec: TurnRecord = { turn: n, actions: parseJson<Action[]>(row.actions) ?? [], results };
    const output = parseJson(row.output);
    if (row.output !== null) rec.output = output;
    committed.push(rec);
  }
  return { committed, open };
}

function childResult(res: ActionResult, child: ChildOutcomeRow): ActionResult {
  const base = { index: res.index, type: res.type, taskId: child.id, ...(res.id === undefined ? {} : { id: res.id }) };
  if (child.state === 'succeeded') return { ...base, ok: true, value: parseJson(child.output) ?? null };
  const error = parseJson<ErrorInfo>(child.error) ?? { code: 'CHILD_NOT_FINISHED', message: `child task is ${child.state}`, retryable: false };
  return { ...base, ok: false, error };
}

export function parseUsage(text: string | null): Usage | null {
  return parseJson<Usage>(text);
}

export type { Json };
