import { streamOf } from '../../audit/chain.ts';
import type { AuditEntry } from '../audit.ts';
import type { TurnCommit } from '../store.ts';
import { auditCtes } from './audit-sql.ts';
import type { CommitHints, HeadHint } from './commit-hints.ts';
import type { SqlParam } from './executor.ts';
import { finishRunAfterFence, runEnded } from './runs-sql.ts';
import { continueInFence, fenceUpdate, succeedInFence } from './tasks-sql.ts';
import { commitTurnAfterFence } from './turns-sql.ts';

/**
 * A turn's commit as one statement, a transaction of its own (PostgreSQL: one round
 * trip, where BEGIN, fence, events and COMMIT are four). It covers the common turns,
 * with no spend to settle and no outbound message: one that keeps its task going; one
 * that finishes the root task of a run outside a session lane (the run ends with it);
 * and one that finishes a lane of an `all` join (the parent's row is only read; the
 * store looks after the commit whether the join is complete).
 *
 * The audit events are chained onto heads this process already knows (CommitHints)
 * instead of heads locked and read first. The statement only writes if the fence held,
 * and it fails as a whole if a head moved meanwhile: the unique (stream, stream_seq)
 * index refuses an event whose number another writer took, and a head that is not
 * where the hint said makes the last column fail to cast. The commit then runs as an
 * ordinary transaction.
 */
export interface CommitStatement {
  sql: string;
  params: SqlParam[];
  /** The streams it appends to, and their heads once it has committed. */
  heads: Map<string, HeadHint>;
  /** The parent of a lane this statement finishes (its join is decided after the commit), else null. */
  parentId: string | null;
}

/**
 * A lane's success when its parent waits in an `all` join: the parent's row is read
 * FOR SHARE, not written. Lanes finishing together share that lock, so none waits
 * for another's COMMIT; a transaction deciding the join (joins-sql.ts, an UPDATE)
 * waits for them all, and then counts them finished. Whether this lane was the last
 * is seen after the commit (sql-store.ts). A lane's success never decides an `all`
 * join before the last lane, so nothing else is checked.
 */
const PARENT_WAITS_FOR_ALL = `SELECT id FROM tasks
  WHERE id = (SELECT parent_id FROM fenced) AND state = 'waiting' AND waiting_for = 'children' AND COALESCE(join_mode, 'all') = 'all'
  FOR SHARE`;

export function commitStatement(c: TurnCommit, hints: CommitHints): CommitStatement | null {
  const { lease, outcome, turn, now } = c;
  if (!turn || (c.settle?.length ?? 0) > 0 || (c.outbox?.length ?? 0) > 0) return null;
  if (outcome.kind !== 'succeed' && outcome.kind !== 'continue') return null;
  const task = hints.tasks.get(lease.taskId);
  if (!task || task.leaseNo !== lease.leaseNo) return null;
  const audit: AuditEntry[] = [...c.audit];
  if (outcome.kind === 'succeed') {
    if (task.parentId === null && task.session) return null;
    // What the transaction's path appends for the same commit: task.succeeded, then
    // finishRun's event for a root (a lane that leaves its join waiting adds none).
    audit.push({ runId: task.runId, taskId: lease.taskId, agent: task.agent, actor: lease.owner, kind: 'task.succeeded' });
    if (task.parentId === null) audit.push(runEnded('succeeded', task.runId, task.runAgent, lease.owner));
  }
  // A gate's verdict also writes its own row; an event that opens a stream has no head yet.
  if (audit.length === 0 || audit.some((e) => e.kind === 'gate.verdict' || e.opensStream)) return null;
  const heads = new Map<string, HeadHint>();
  for (const s of new Set(audit.map(streamOf))) {
    const head = hints.heads.get(s);
    if (!head) return null;
    heads.set(s, head);
  }

  const fenced = fenceUpdate(lease, now, outcome.kind === 'succeed' ? succeedInFence(outcome.output, turn.n, now) : continueInFence(turn.n));
  const followed = commitTurnAfterFence(turn, now);
  const parts = [`fenced AS (${fenced.sql})`, `followed AS (${followed.sql})`];
  const params: SqlParam[] = [...fenced.params, ...followed.params];
  // Every head must have been where the hint said (`moved`), and a lane's parent must
  // wait in an `all` join (`parent`): if not, the cast fails and so does the whole
  // statement (the subqueries keep it from being folded at planning). A lane of any
  // other join (a quorum, a race) runs as a transaction.
  let held = `(SELECT COUNT(*) FROM moved) = CAST(? AS INTEGER)`;
  let told = `'heads moved: ' || (SELECT COUNT(*) FROM moved)`;
  if (outcome.kind === 'succeed' && task.parentId === null) {
    const done = finishRunAfterFence('succeeded', outcome.output, now);
    parts.push(`run_done AS (${done.sql})`);
    params.push(...done.params);
  } else if (outcome.kind === 'succeed') {
    parts.push(`parent AS (${PARENT_WAITS_FOR_ALL})`);
    held += ` AND (SELECT COUNT(*) FROM parent) = 1`;
    told += ` || ', parent not waiting for all its lanes'`;
  }
  const appended = auditCtes(audit.map((entry) => ({ now, entry })), heads, 'fenced');
  parts.push(...appended.ctes);
  params.push(...appended.params, appended.known);
  const check = `CASE WHEN ${held} THEN 0 ELSE CAST(${told} AS INTEGER) END AS held`;
  // A data-modifying WITH runs whether or not it is read; only the fence's id comes back
  // (each column returned costs the driver a parser per statement).
  const parentId = outcome.kind === 'succeed' ? task.parentId : null;
  return { sql: `WITH ${parts.join(', ')} SELECT fenced.id, ${check} FROM fenced`, params, heads, parentId };
}
