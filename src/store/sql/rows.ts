import { parseJson } from '../../core/json.ts';
import type { ErrorInfo, Run, RunState, Task, TaskState } from '../../core/types.ts';
import type { EffectRecord } from '../store.ts';

/**
 * Rows shared by several aggregates' SQL (runs, tasks, effects) and their mappers to the
 * port's types. Rows come as the database returns them (snake_case; integers may arrive
 * as strings from pg).
 */
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
  /** The lanes still out, counted when read (LANES_OUT); the stored waiting_on can lag on PostgreSQL. */
  lanes_out?: number | string;
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
    waitingOn: num(r.lanes_out ?? r.waiting_on),
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
