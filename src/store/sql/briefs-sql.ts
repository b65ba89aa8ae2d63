import { parseJson, toJson } from '../../core/json.ts';
import type { Brief, BriefBody, BriefState } from '../../core/brief.ts';
import type { AuditEntry } from '../audit.ts';
import type { BriefFilter } from '../briefs.ts';
import type { BriefStep, BriefStore } from '../store.ts';
import { insertApproval } from './approvals-sql.ts';
import { insertAudit } from './audit-sql.ts';
import { insertOutbox } from './outbox-sql.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor } from './executor.ts';
import { toTask } from './rows.ts';
import { fence, waitForApproval, waitForChildren } from './tasks-sql.ts';
import { whereOf } from './where.ts';

/** Briefs: one row per joined turn of a parent task; the body (parts, conflicts, failed lanes) is JSON. */

interface BriefRow {
  id: string;
  run_id: string;
  task_id: string;
  turn: number | string;
  agent: string;
  state: string;
  digest: string | null;
  body: string;
  created_at: number | string;
  updated_at: number | string;
}

function toBrief(r: BriefRow): Brief {
  const body = parseJson<BriefBody>(r.body)!;
  return {
    id: r.id,
    runId: r.run_id,
    taskId: r.task_id,
    turn: Number(r.turn),
    agent: r.agent,
    state: r.state as BriefState,
    digest: r.digest,
    ...body,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

function bodyOf(b: Brief): BriefBody {
  return { lanes: b.lanes, claimed: b.claimed, parts: b.parts, conflicts: b.conflicts, missing: b.missing, failedLanes: b.failedLanes };
}

async function upsertBrief(tx: SqlExecutor, b: Brief, now: number): Promise<void> {
  await tx.run(
    `INSERT INTO briefs (id, run_id, task_id, turn, agent, state, digest, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (task_id, turn) DO UPDATE SET state = excluded.state, digest = excluded.digest, body = excluded.body, updated_at = excluded.updated_at`,
    [b.id, b.runId, b.taskId, b.turn, b.agent, b.state, b.digest, toJson(bodyOf(b)), b.createdAt, now],
  );
}

export function sqlBriefStore(db: SqlBackend): BriefStore {
  return {
    async get(id: string): Promise<Brief | null> {
      const row = await db.read.get<BriefRow>('SELECT * FROM briefs WHERE id = ?', [id]);
      return row ? toBrief(row) : null;
    },

    async forTurn(taskId: string, turn: number): Promise<Brief | null> {
      const row = await db.read.get<BriefRow>('SELECT * FROM briefs WHERE task_id = ? AND turn = ?', [taskId, turn]);
      return row ? toBrief(row) : null;
    },

    async list(filter: BriefFilter): Promise<Brief[]> {
      const w = whereOf([
        ['run_id = ?', filter.runId],
        ['state = ?', filter.state],
        ['id < ?', filter.before],
      ]);
      const rows = await db.read.all<BriefRow>(`SELECT * FROM briefs ${w.sql} ORDER BY id DESC LIMIT ?`, [...w.params, filter.limit]);
      return rows.map(toBrief);
    },

    async save(step: BriefStep, now: number): Promise<void> {
      const woke = await db.transaction(async (tx) => {
        const task = toTask(await fence(tx, step.lease, now));
        await upsertBrief(tx, step.brief, now);
        const audit: AuditEntry[] = [...step.audit];
        const base = { runId: task.runId, taskId: task.id, agent: task.agent, actor: step.lease.owner };
        if (step.judges?.length) {
          // The judges are children of the parent, placed at negative actions of the joined turn: never mistaken for its handoffs.
          await waitForChildren(tx, task, task.turns, step.judges, step.lease.owner, now, audit);
          audit.push({ ...base, kind: 'task.waiting', data: { for: 'judges', children: step.judges.length } });
          await insertAudit(tx, now, audit);
          return true;
        }
        if (step.approvals?.length || step.park) {
          await waitForApproval(tx, task.id, task.turns, now);
          await insertAudit(tx, now, audit.splice(0));
          for (const a of step.approvals ?? []) await insertApproval(tx, a, now, step.lease.owner);
          await insertAudit(tx, now, [{ ...base, kind: 'task.waiting', data: { for: 'approval' } }]);
          return false;
        }
        let queued = false;
        for (const item of step.outbox ?? []) queued = (await insertOutbox(tx, item, now)).created || queued;
        await insertAudit(tx, now, audit);
        return queued;
      });
      if (woke) db.signalTasksReady();
    },
  };
}
