import { insertAudit } from './audit-sql.ts';
import type { SqlExecutor } from './executor.ts';
import { placeholders } from './where.ts';

/**
 * Closes the open approvals of tasks that were just cancelled: nothing is left to
 * decide, so they become `cancelled` (audited), and a later decision is refused.
 * Kept apart from approvals-sql.ts, which depends on the task statements.
 */
export async function cancelOpenApprovals(tx: SqlExecutor, taskIds: readonly string[], now: number, actor: string, reason?: string): Promise<number> {
  if (taskIds.length === 0) return 0;
  const rows = await tx.all<{ id: string; run_id: string; task_id: string; agent: string; rule_id: string | null }>(
    `UPDATE approvals SET state = 'cancelled', decided_by = ?, decided_at = ?, decision_reason = ?
     WHERE state = 'pending' AND task_id IN (${placeholders(taskIds.length)}) RETURNING id, run_id, task_id, agent, rule_id`,
    [actor, now, reason ?? 'the task was cancelled', ...taskIds],
  );
  await insertAudit(
    tx,
    now,
    rows.map((r) => ({
      kind: 'approval.cancelled',
      runId: r.run_id,
      taskId: r.task_id,
      agent: r.agent,
      actor,
      data: { approval: r.id, ruleId: r.rule_id, reason: reason ?? null },
    })),
  );
  return rows.length;
}
