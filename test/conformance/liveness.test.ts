// Stuck-work detectors (validation/liveness.ts) through `spine doctor`'s diagnosis, on
// the store the suite runs on: a lease expired without a heartbeat, a turn past its
// agent's timeout and a run past its SLA
// are reported; nothing is changed by looking.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { diagnose } from '../../src/cli/commands/doctor.ts';
import { tempStore } from '../helpers.ts';

it('doctor lists a turn past its timeout and a run past its SLA', async (t) => {
  const { store, url, cleanup } = await tempStore();
  t.after(cleanup);
  const now = Date.now();
  const { run } = await store.runs.create({ agent: 'slow', input: null, maxAttempts: 1 }, now);
  const [claimed] = await store.tasks.claim({ workerId: 'w', limit: 1, leaseMs: 60_000, now });
  assert.ok(claimed);

  const fresh = await diagnose(url, 60_000, now + 1_000, { runSlaMs: 60_000, turnTimeoutMs: () => 5_000 });
  assert.equal(fresh.checks.find((c) => c.name === 'stuck work')?.status, 'ok');

  const later = now + 10 * 60_000;
  const report = await diagnose(url, 60_000, later, { runSlaMs: 60_000, turnTimeoutMs: () => 5_000 });
  assert.deepEqual(report.findings.map((f) => [f.kind, f.id]).sort(), [
    ['lease-expired', claimed.task.id],
    ['run-over-sla', run.id],
    ['turn-overdue', claimed.task.id],
  ]);
  const check = report.checks.find((c) => c.name === 'stuck work')!;
  assert.equal(check.status, 'warn');
  assert.match(check.detail, /turn-overdue .*slow running for 600 s/);
  assert.equal((await store.tasks.get(claimed.task.id))!.state, 'running', 'nothing changed');
});
