import { streamOf } from '../../audit/chain.ts';
import { StoreUnavailableError } from '../../core/errors.ts';
import { toJson } from '../../core/json.ts';
import type { AuditEntry } from '../audit.ts';
import type { TurnCommit } from '../store.ts';
import { AUDIT_COLUMNS, auditCtes, chainEvents } from './audit-sql.ts';
import type { CommitHints, HeadHint, TaskHint } from './commit-hints.ts';
import { storedParams, type SqlParam } from './executor.ts';
import { FINISH_RUNS_AFTER_FENCE, finishRunAfterFence, runEnded } from './runs-sql.ts';
import { statementBatcher, type StatementBackend } from './statement-batcher.ts';
import { FENCE_UNITS, continueInFence, fenceUpdate, settleAllJoin, succeedInFence } from './tasks-sql.ts';
import { COMMIT_TURNS_AFTER_FENCE, commitTurnAfterFence } from './turns-sql.ts';

/**
 * Turns' commits as one statement, a transaction of its own (PostgreSQL: one round
 * trip, where BEGIN, fence, events and COMMIT are four for each). It covers the common
 * turns, with no spend to settle and no outbound message: one that keeps its task
 * going; one that finishes the root task of a run outside a session lane (the run ends
 * with it); and one that finishes a lane of an `all` join (the parent's row is only
 * read; the store looks after the commit whether the join is complete). The commits
 * of one process asked for meanwhile share a statement (commitBatcher): one alone is
 * oneStatement, several are commitsStatement.
 *
 * The audit events are chained onto heads this process already knows (CommitHints)
 * instead of heads locked and read first. A unit whose fence does not hold (its lease
 * is lost) writes nothing and the others commit. The statement fails as a whole if a
 * head moved meanwhile: the unique (stream, stream_seq) index refuses an event whose
 * number another writer took, and a head that is not where the hint said makes the
 * last column fail to cast. Each of its commits then runs as an ordinary transaction.
 */
export interface CommitUnit {
  taskId: string;
  commit: TurnCommit;
  task: TaskHint;
  /** The events it appends (the turn's, and those its outcome adds). */
  audit: AuditEntry[];
  /** Its streams' heads as the hints had them; `heads`: where the statement built leaves them. */
  was: Map<string, HeadHint>;
  heads: Map<string, HeadHint>;
  /** The parent of a lane this unit finishes (its join is decided after the commit), else null. */
  parentId: string | null;
  succeeds: boolean;
}

/**
 * A lane's success when its parent waits in an `all` join: the parent's row is read
 * FOR SHARE, not written. Lanes finishing together share that lock, so none waits
 * for another's COMMIT; a transaction deciding the join (joins-sql.ts, an UPDATE)
 * waits for them all, and then counts them finished. Whether a lane was the last is
 * seen after the commit (sql-store.ts). A lane's success never decides an `all` join
 * before the last lane, so nothing else is checked.
 */
const PARENT_WAITS_FOR_ALL = `SELECT id FROM tasks
  WHERE id = (SELECT parent_id FROM fenced) AND state = 'waiting' AND waiting_for = 'children' AND COALESCE(join_mode, 'all') = 'all'
  FOR SHARE`;
/** PARENT_WAITS_FOR_ALL for the lanes among several units. */
const PARENTS_WAIT_FOR_ALL = `SELECT p.id FROM tasks p JOIN fenced f ON p.id = f.parent_id JOIN u ON u.id = f.id
  WHERE u.lane AND p.state = 'waiting' AND p.waiting_for = 'children' AND COALESCE(p.join_mode, 'all') = 'all'
  FOR SHARE OF p`;

/** The units, the events and the heads, each a JSON array of arrays (one parameter each). */
const UNITS = `SELECT x->>0 AS id, x->>1 AS owner, CAST(x->>2 AS BIGINT) AS lease_no, CAST(x->>3 AS BOOLEAN) AS succeed,
    CAST(x->>4 AS BOOLEAN) AS root, CAST(x->>5 AS BOOLEAN) AS lane, x->>6 AS output, CAST(x->>7 AS BIGINT) AS n,
    x->>8 AS actions, x->>9 AS results, x->>10 AS turn_output, x->>11 AS usage, CAST(x->>12 AS BIGINT) AS at
  FROM jsonb_array_elements(CAST(? AS jsonb)) AS x`;
const EVENTS = `INSERT INTO audit_events (${AUDIT_COLUMNS})
  SELECT CAST(x->>1 AS BIGINT), x->>2, x->>3, x->>4, x->>5, x->>6, x->>7, x->>8, x->>9, CAST(x->>10 AS BIGINT), x->>11, x->>12
  FROM jsonb_array_elements(CAST(? AS jsonb)) WITH ORDINALITY AS e(x, ord) WHERE x->>0 IN (SELECT id FROM fenced) ORDER BY ord`;
const HEADS = `SELECT x->>0 AS unit, x->>1 AS stream, CAST(x->>2 AS BIGINT) AS was, CAST(x->>3 AS BIGINT) AS n, x->>4 AS hash
  FROM jsonb_array_elements(CAST(? AS jsonb)) AS x`;

/**
 * Several units: they, their events and their heads travel as JSON, so the text is the
 * same for any number of them (prepared once per connection, planned once). Every head
 * of a committing unit must have been where the hint said (`moved`), and each lane's
 * parent must wait in an `all` join (`parent`): if not, the cast fails and so does the
 * whole statement (the subqueries keep it from being folded at planning). Only the
 * fences' ids come back (each column returned costs the driver a parser per statement).
 */
const COMMITS = `WITH u AS MATERIALIZED (${UNITS}),
  fenced AS (${FENCE_UNITS}),
  followed AS (${COMMIT_TURNS_AFTER_FENCE}),
  run_done AS (${FINISH_RUNS_AFTER_FENCE}),
  parent AS (${PARENTS_WAIT_FOR_ALL}),
  events AS (${EVENTS}),
  hd AS MATERIALIZED (${HEADS}),
  moved AS (UPDATE audit_heads a SET stream_seq = hd.n, hash = hd.hash FROM hd
    WHERE a.stream = hd.stream AND a.stream_seq = hd.was AND hd.unit IN (SELECT id FROM fenced) RETURNING a.stream)
  SELECT f.id, CASE
    WHEN (SELECT COUNT(*) FROM moved) = (SELECT COUNT(*) FROM hd WHERE hd.unit IN (SELECT id FROM fenced))
     AND (SELECT COUNT(*) FROM parent) = (SELECT COUNT(*) FROM u WHERE u.lane AND u.id IN (SELECT id FROM fenced)) THEN 0
    ELSE CAST('heads moved: ' || (SELECT COUNT(*) FROM moved) || ', parents waiting for all: ' || (SELECT COUNT(*) FROM parent) AS INTEGER) END AS held
  FROM fenced f`;

/** A turn's commit as a unit of a statement, or null if it must run as a transaction. */
export function commitUnit(c: TurnCommit, hints: CommitHints): CommitUnit | null {
  const { lease, outcome, turn } = c;
  if (!turn || (c.settle?.length ?? 0) > 0 || (c.outbox?.length ?? 0) > 0) return null;
  if (outcome.kind !== 'succeed' && outcome.kind !== 'continue') return null;
  const task = hints.tasks.get(lease.taskId);
  if (!task || task.leaseNo !== lease.leaseNo) return null;
  const succeeds = outcome.kind === 'succeed';
  const audit: AuditEntry[] = [...c.audit];
  if (succeeds) {
    if (task.parentId === null && task.session) return null;
    // What the transaction's path appends for the same commit: task.succeeded, then
    // finishRun's event for a root (a lane that leaves its join waiting adds none).
    audit.push({ runId: task.runId, taskId: lease.taskId, agent: task.agent, actor: lease.owner, kind: 'task.succeeded' });
    if (task.parentId === null) audit.push(runEnded('succeeded', task.runId, task.runAgent, lease.owner));
  }
  // A gate's verdict also writes its own row; an event that opens a stream has no head yet.
  if (audit.length === 0 || audit.some((e) => e.kind === 'gate.verdict' || e.opensStream)) return null;
  const was = new Map<string, HeadHint>();
  for (const s of new Set(audit.map(streamOf))) {
    const head = hints.heads.get(s);
    if (!head) return null;
    was.set(s, head);
  }
  return { taskId: lease.taskId, commit: c, task, audit, was, heads: was, parentId: succeeds ? task.parentId : null, succeeds };
}

/** One unit: its own text per shape (which parts, how many events), the cheaper statement for one. */
export function oneStatement(u: CommitUnit): { sql: string; params: SqlParam[] } {
  const { lease, outcome, turn, now } = u.commit;
  const fenced = fenceUpdate(lease, now, outcome.kind === 'succeed' ? succeedInFence(outcome.output, turn!.n, now) : continueInFence(turn!.n));
  const followed = commitTurnAfterFence(turn!, now);
  const parts = [`fenced AS (${fenced.sql})`, `followed AS (${followed.sql})`];
  const params: SqlParam[] = [...fenced.params, ...followed.params];
  // As in COMMITS: every head where the hint said (`moved`), a lane's parent waiting in
  // an `all` join (`parent`), else the cast fails the whole statement.
  let held = `(SELECT COUNT(*) FROM moved) = CAST(? AS INTEGER)`;
  let told = `'heads moved: ' || (SELECT COUNT(*) FROM moved)`;
  if (outcome.kind === 'succeed' && u.task.parentId === null) {
    const done = finishRunAfterFence('succeeded', outcome.output, now);
    parts.push(`run_done AS (${done.sql})`);
    params.push(...done.params);
  } else if (outcome.kind === 'succeed') {
    parts.push(`parent AS (${PARENT_WAITS_FOR_ALL})`);
    held += ` AND (SELECT COUNT(*) FROM parent) = 1`;
    told += ` || ', parent not waiting for all its lanes'`;
  }
  u.heads = new Map(u.was);
  const appended = auditCtes(u.audit.map((entry) => ({ now, entry })), u.heads, 'fenced');
  parts.push(...appended.ctes);
  params.push(...appended.params, appended.known);
  const check = `CASE WHEN ${held} THEN 0 ELSE CAST(${told} AS INTEGER) END AS held`;
  // A data-modifying WITH runs whether or not it is read; only the fence's id comes back.
  return { sql: `WITH ${parts.join(', ')} SELECT fenced.id, ${check} FROM fenced`, params };
}

/** Several units (COMMITS). */
export function commitsStatement(units: readonly CommitUnit[]): { sql: string; params: SqlParam[] } {
  const records: SqlParam[][] = [];
  const events: SqlParam[][] = [];
  const heads: SqlParam[][] = [];
  for (const u of units) {
    const { lease, outcome, turn, now } = u.commit;
    const root = u.task.parentId === null;
    // chainEvents moves `u.heads` to where this unit leaves them.
    u.heads = new Map(u.was);
    const rows = u.audit.map((entry) => ({ now, entry, stream: streamOf(entry) }));
    const chained = chainEvents(rows, u.heads);
    rows.forEach((_, i) => events.push(storedParams([u.taskId, ...chained.slice(i * 12, i * 12 + 12)])));
    for (const [stream, head] of u.heads) heads.push([u.taskId, stream, u.was.get(stream)!.n, head.n, head.hash]);
    records.push(
      storedParams([
        u.taskId,
        lease.owner,
        lease.leaseNo,
        // Flags as 1/0, which CAST(… AS BOOLEAN) reads.
        u.succeeds ? 1 : 0,
        u.succeeds && root ? 1 : 0,
        u.succeeds && !root ? 1 : 0,
        outcome.kind === 'succeed' ? toJson(outcome.output) : null,
        turn!.n,
        toJson(turn!.actions),
        toJson(turn!.results),
        turn!.output === undefined ? null : toJson(turn!.output),
        turn!.usage ? toJson(turn!.usage) : null,
        now,
      ]),
    );
  }
  return { sql: COMMITS, params: [JSON.stringify(records), JSON.stringify(events), JSON.stringify(heads)] };
}

/** Units that share a stream never share a statement: each is chained on the heads it was built on. */
export function disjointUnits(queue: CommitUnit[], most: number): CommitUnit[] {
  const taken: CommitUnit[] = [];
  const streams = new Set<string>();
  for (let i = 0; i < queue.length && taken.length < most; ) {
    const u = queue[i]!;
    if ([...u.was.keys()].some((s) => streams.has(s))) {
      i++;
      continue;
    }
    for (const s of u.was.keys()) streams.add(s);
    taken.push(u);
    queue.splice(i, 1);
  }
  return taken;
}

/** Units one statement takes at most (a worker's concurrency is rarely more)... */
const COMMIT_BATCH = 16;
/**
 * ...and such statements in flight at once: one waits for the database while the next
 * fills. One did as well on W2, but then a statement waiting on a row lock (a lane's
 * parent held by a join's transaction) would hold up every commit of the process.
 */
const COMMITS_IN_FLIGHT = 2;

/** What became of a unit: committed, its lease lost (nothing written), or refused (run it as a transaction). */
export type UnitOutcome = 'committed' | 'lost' | 'refused';

/**
 * The units this process's workers commit meanwhile share a statement
 * (statement-batcher.ts). Resolves to each unit's outcome; a store failure (the
 * statement's outcome unknown) is thrown as it is. Hints are kept here: a committed
 * unit's heads learned, a refused statement's forgotten, a finished task's dropped.
 *
 * Lanes of an `all` join left their parent's row alone: whether the join is complete
 * is seen once they have committed, with one look per parent for the lanes of a
 * statement (tasks-sql.ts settleAllJoin), which a committed lane's outcome waits for.
 * The commit stands whatever the look meets: a join it fails to decide is the
 * reaper's (FINISHED_JOINS).
 */
export function commitBatcher(db: StatementBackend, hints: CommitHints): (unit: CommitUnit) => Promise<UnitOutcome> {
  return statementBatcher<CommitUnit, { id: string }, UnitOutcome>(db, {
    inFlight: COMMITS_IN_FLIGHT,
    most: COMMIT_BATCH,
    take: (queue) => disjointUnits(queue, COMMIT_BATCH),
    build: (units) => (units.length === 1 ? oneStatement(units[0]!) : commitsStatement(units)),
    settle(units, rows, err) {
      if (err instanceof StoreUnavailableError) throw err;
      if (rows === null) {
        for (const u of units) hints.forgetHeads(u.heads.keys());
        hints.stats.fallbacks += units.length;
        return units.map(() => 'refused' as const);
      }
      const committed = new Set(rows.map((r) => r.id));
      const looks = new Map<string, Promise<UnitOutcome>>();
      return units.map((u) => {
        if (!committed.has(u.taskId)) return 'lost';
        hints.learnHeads(u.heads);
        hints.stats.single++;
        if (u.succeeds) hints.tasks.delete(u.taskId);
        if (u.parentId === null) return 'committed';
        let look = looks.get(u.parentId);
        if (!look) {
          look = settleAllJoin(db, u.parentId, u.commit.now, u.commit.lease.owner).then(
            () => 'committed' as const,
            () => 'committed' as const,
          );
          looks.set(u.parentId, look);
        }
        return look;
      });
    },
  });
}
