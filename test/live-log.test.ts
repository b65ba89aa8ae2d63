// The live log's lines (spine up, spine runs follow): time and run on every line, and the
// waits named — an approval, an escalation, a time window or rate limit, a retry. And
// worker liveness: by heartbeat, and on this host by process.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { liveLine } from '../src/cli/live-log.ts';
import type { AuditEvent } from '../src/store/store.ts';
import { aliveSince, isAlive } from '../src/validation/worker-liveness.ts';

const AT = Date.parse('2026-01-15T09:30:05.123Z');
const ev = (kind: string, data: Record<string, unknown> = {}, agent = 'payer'): AuditEvent => ({ seq: 1, at: AT, kind, runId: 'run_1', taskId: 'task_1', agent, actor: 'alice', data: data as never });

test('every line starts with the time (UTC) and the run; the waits are named', () => {
  assert.equal(liveLine(ev('run.created')), '09:30:05.123 run_1  started → payer');
  assert.equal(
    liveLine(ev('approval.requested', { approval: 'apr_1', approvers: 'finance', action: { kind: 'tool', name: 'payments.send', input: { amount: 120 } } })),
    '09:30:05.123 run_1  payer waits for approval by finance of tool:payments.send (apr_1; `spine approvals show apr_1`)',
  );
  assert.match(liveLine(ev('task.escalated', { approval: 'apr_2', reason: 'cost ceiling per-run reached' }))!, /payer escalated: cost ceiling per-run reached \(apr_2; `spine approvals show apr_2`\)$/);
  assert.equal(
    liveLine(ev('task.deferred', { until: Date.parse('2026-01-15T18:00:00Z'), ruleId: 'quiet', reason: 'outside window quiet' })),
    '09:30:05.123 run_1  payer waits until 2026-01-15 18:00:00Z: outside window quiet',
  );
  assert.match(liveLine(ev('task.deferred', { until: AT + 200, reason: 'rate limit search: waiting for a token' }))!, /waits until .*rate limit search: waiting for a token$/);
  assert.match(liveLine(ev('approval.denied', { approval: 'apr_1', reason: 'wrong vendor' }))!, /payer: apr_1 denied by alice \(wrong vendor\)$/);
  assert.match(liveLine(ev('task.retry-scheduled', { attempt: 1, runAt: AT + 500 }))!, /attempt 1 failed; retry at 2026-01-15 09:30:05Z$/);
  assert.match(liveLine(ev('effect.completed', { tool: 'payments.send', maybeRepeated: true }))!, /maybeRepeated: run again after an interruption, same idempotency key/);
  assert.equal(liveLine(ev('turn.committed')), null, 'the rest stays in the audit log');
});

test('a worker is alive by heartbeat, and on this host only while its process exists', () => {
  const now = 1_000_000;
  const probe = { now, heartbeatMs: 1_000, host: 'here', pidExists: (pid: number) => pid === 42 };
  const w = { id: 'w', pid: 42, host: 'here', startedAt: 0, heartbeatAt: now - 500, stoppedAt: null };
  assert.equal(aliveSince(probe), now - 3_000, 'two missed beats are tolerated');
  assert.equal(isAlive(w, probe), true);
  assert.equal(isAlive({ ...w, pid: 43 }, probe), false, 'fresh heartbeat, but its process is gone');
  assert.equal(isAlive({ ...w, pid: 43, host: 'elsewhere' }, probe), true, 'another host: only the heartbeat tells');
  assert.equal(isAlive({ ...w, heartbeatAt: now - 3_001 }, probe), false, 'heartbeats stopped');
  assert.equal(isAlive({ ...w, stoppedAt: now - 1 }, probe), false, 'stopped cleanly');
});
