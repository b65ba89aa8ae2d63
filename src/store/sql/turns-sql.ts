import { parseJson, toJson } from '../../core/json.ts';
import type { Action, ActionResult, ErrorInfo, Json, TurnRecord, Usage } from '../../core/types.ts';
import type { OpenTurn } from '../store.ts';
import type { SqlExecutor, SqlParam } from './executor.ts';
import { toEffect, type EffectRow } from './rows.ts';
import { placeholders } from './where.ts';

/**
 * A task's turns: `decided` (its actions recorded before they run, so a resumed task
 * replays them instead of asking the agent again) and then `committed` with their
 * results. A handoff's result is read from the child task when the history is loaded.
 */

export interface TurnRow {
  task_id: string;
  n: number | string;
  state: string;
  actions: string;
  results: string | null;
  output: string | null;
  usage: string | null;
}

interface ChildOutcomeRow {
  id: string;
  parent_turn: number | string | null;
  parent_action: number | string | null;
  state: string;
  output: string | null;
  error: string | null;
}

export async function insertDecidedTurn(tx: SqlExecutor, taskId: string, d: { n: number; actions: Action[]; output?: Json; usage: Usage | null }, now: number): Promise<void> {
  await tx.run(`INSERT INTO turns (task_id, n, state, actions, output, usage, decided_at) VALUES (?, ?, 'decided', ?, ?, ?, ?)`, [
    taskId,
    d.n,
    toJson(d.actions),
    d.output === undefined ? null : toJson(d.output),
    d.usage ? toJson(d.usage) : null,
    now,
  ]);
}

/** A committed turn meets the row its decision left: the results and the commit time are added to it. */
const COMMIT_OVER_DECIDED = `ON CONFLICT (task_id, n) DO UPDATE SET state = 'committed', results = excluded.results, output = excluded.output,
       usage = COALESCE(excluded.usage, turns.usage), committed_at = excluded.committed_at`;

const committedParams = (t: CommittedTurn, now: number): SqlParam[] => [
  toJson(t.actions),
  toJson(t.results),
  t.output === undefined ? null : toJson(t.output),
  t.usage ? toJson(t.usage) : null,
  now,
  now,
];

interface CommittedTurn {
  n: number;
  actions: Action[];
  results: ActionResult[];
  output?: Json;
  usage?: Usage | null;
}

/** Commits a turn with its results; a turn decided earlier keeps its usage unless the commit brings one. */
export async function commitTurnRow(tx: SqlExecutor, taskId: string, t: CommittedTurn, now: number): Promise<void> {
  await tx.run(
    `INSERT INTO turns (task_id, n, state, actions, results, output, usage, decided_at, committed_at)
     VALUES (?, ?, 'committed', ?, ?, ?, ?, ?, ?) ${COMMIT_OVER_DECIDED}`,
    [taskId, t.n, ...committedParams(t, now)],
  );
}

/**
 * The same commit as a statement over the fenced task row (`fenced`, see tasks-sql.ts
 * fence): PostgreSQL runs it in the fence's round trip, and only if the fence held.
 */
export function commitTurnAfterFence(t: CommittedTurn, now: number): { sql: string; params: SqlParam[] } {
  return {
    sql: `INSERT INTO turns (task_id, n, state, actions, results, output, usage, decided_at, committed_at)
     SELECT id, CAST(? AS BIGINT), 'committed', ?, ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT) FROM fenced ${COMMIT_OVER_DECIDED}`,
    params: [t.n, ...committedParams(t, now)],
  };
}

/** commitTurnAfterFence for the fenced tasks of `u` (their turns' columns: n, actions, results, turn_output, usage, at). */
export const COMMIT_TURNS_AFTER_FENCE = `INSERT INTO turns (task_id, n, state, actions, results, output, usage, decided_at, committed_at)
     SELECT u.id, u.n, 'committed', u.actions, u.results, u.turn_output, u.usage, u.at, u.at FROM u JOIN fenced f ON f.id = u.id ${COMMIT_OVER_DECIDED}`;

/** The turn rows of several tasks at once (one read for a whole claim batch), by task. */
export async function turnRowsOf(db: SqlExecutor, taskIds: readonly string[]): Promise<Map<string, TurnRow[]>> {
  const rows = await db.all<TurnRow>(`SELECT * FROM turns WHERE task_id IN (${placeholders(taskIds.length)}) ORDER BY task_id, n`, taskIds);
  const byTask = new Map<string, TurnRow[]>();
  for (const t of rows) byTask.set(t.task_id, [...(byTask.get(t.task_id) ?? []), t]);
  return byTask;
}

export async function loadTurns(db: SqlExecutor, taskId: string): Promise<{ committed: TurnRecord[]; open: TurnRow | null }> {
  const turns = await db.all<TurnRow>('SELECT * FROM turns WHERE task_id = ? ORDER BY n', [taskId]);
  return assembleTurnRows(db, taskId, turns);
}

/** A task's committed history and its open (decided, uncommitted) turn, with handoff results from the children. */
export async function assembleTurnRows(db: SqlExecutor, taskId: string, turns: TurnRow[]): Promise<{ committed: TurnRecord[]; open: TurnRow | null }> {
  if (turns.length === 0) return { committed: [], open: null };
  const needsChildren = turns.some((t) => t.actions.includes('"handoff"'));
  const children = needsChildren
    ? await db.all<ChildOutcomeRow>('SELECT id, parent_turn, parent_action, state, output, error FROM tasks WHERE parent_id = ?', [taskId])
    : [];
  return assembleTurns(turns, children);
}

/** The open turn as the task runner resumes it: its recorded actions and the effects already begun. */
export async function openTurnOf(db: SqlExecutor, taskId: string, open: TurnRow): Promise<OpenTurn> {
  const effects = await db.all<EffectRow>('SELECT * FROM effects WHERE task_id = ? AND turn = ? ORDER BY action', [taskId, Number(open.n)]);
  return {
    turn: Number(open.n),
    actions: parseJson<Action[]>(open.actions) ?? [],
    ...(open.output === null ? {} : { output: parseJson(open.output) }),
    usage: parseJson<Usage>(open.usage),
    effects: effects.map(toEffect),
  };
}

/**
 * Rebuilds a task's history from its turn rows, filling each handoff's result from
 * the child task's final state (children finish after the parent's turn commits).
 */
function assembleTurns(rows: TurnRow[], children: ChildOutcomeRow[]): { committed: TurnRecord[]; open: TurnRow | null } {
  const byPlace = new Map<string, ChildOutcomeRow>();
  for (const c of children) byPlace.set(`${c.parent_turn}/${c.parent_action}`, c);
  const committed: TurnRecord[] = [];
  let open: TurnRow | null = null;
  for (const row of rows) {
    if (row.state !== 'committed') {
      open = row;
      continue;
    }
    const n = Number(row.n);
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
