// `spine doctor` on whichever backend the suite runs (SQLite by default, PostgreSQL
// under test:pg): a healthy store exits 0 and reports every check; a lease held long
// past its expiry, a schema newer than this build, or an unreachable database exit 1
// and say which check failed. Nothing is changed by looking.
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { doctorCommand } from '../src/cli/commands/doctor.ts';
import { TEST_DB, forge, tempStore } from './helpers.ts';

interface Json {
  healthy: boolean;
  capabilities: { groupCommit: boolean; crossProcessWakeups: boolean; skipLockedClaims: boolean } | null;
  schema: { current: number; known: number } | null;
  health: { tasksByState: Record<string, number>; stuckLeases: { count: number }; pendingApprovals: number; outbox: { pending: number } } | null;
  checks: Array<{ name: string; status: string; detail: string }>;
}

async function doctor(url: string, ...args: string[]): Promise<{ exitCode: number; report: Json; text: string }> {
  const json = await doctorCommand(['--db', url, '--json', ...args]);
  const text = await doctorCommand(['--db', url, ...args]);
  return { exitCode: json.exitCode ?? 0, report: JSON.parse(json.stdout!) as Json, text: text.stdout! };
}

const statusOf = (r: Json, name: string) => r.checks.find((c) => c.name === name)?.status;

test(`doctor on ${TEST_DB}: healthy, then a stuck lease and a schema from the future make it fail`, async (t) => {
  const { store, url, cleanup } = await tempStore();
  t.after(cleanup);
  const now = Date.now();
  await store.runs.create({ agent: 'a', input: 1, maxAttempts: 1 }, now);
  const { run } = await store.runs.create({ agent: 'a', input: 2, maxAttempts: 1 }, now);

  const healthy = await doctor(url);
  assert.equal(healthy.exitCode, 0, healthy.text);
  assert.equal(healthy.report.healthy, true);
  assert.deepEqual(
    healthy.report.checks.map((c) => [c.name, c.status]),
    [
      ['connectivity', 'ok'],
      ['backend', 'ok'],
      ['schema', 'ok'],
      ['leases', 'ok'],
      ['queue', 'ok'],
      ['approvals', 'ok'],
      ['outbox', 'ok'],
      ['breakers', 'ok'],
      ['heartbeats', 'ok'],
      ['probes', 'ok'],
      ['stuck work', 'ok'],
      ['audit', 'warn'],
    ],
  );
  assert.equal(healthy.report.capabilities?.skipLockedClaims, TEST_DB === 'postgres');
  assert.deepEqual(healthy.report.health?.tasksByState, { queued: 2 });
  assert.match(healthy.text, /healthy$/);

  // A worker claimed a task and died long ago; nobody reclaimed it.
  const [claimed] = await store.tasks.claim({ workerId: 'dead-worker', limit: 1, leaseMs: 60_000, now });
  assert.ok(claimed);
  await forge(store, 'UPDATE tasks SET lease_expires_at = ? WHERE id = ?', [now - 5 * 60_000, claimed.task.id]);
  const stuck = await doctor(url);
  assert.equal(stuck.exitCode, 1, stuck.text);
  assert.equal(statusOf(stuck.report, 'leases'), 'fail');
  assert.match(stuck.report.checks.find((c) => c.name === 'leases')!.detail, new RegExp(`1 task\\(s\\) held past lease expiry.*${claimed.task.id}`));
  assert.equal(stuck.report.health?.stuckLeases.count, 1);
  assert.match(stuck.text, /UNHEALTHY$/);
  // Only just expired: a warning, not a failure.
  await forge(store, 'UPDATE tasks SET lease_expires_at = ? WHERE id = ?', [Date.now() - 1_000, claimed.task.id]);
  const recent = await doctor(url);
  assert.equal(statusOf(recent.report, 'leases'), 'warn');
  assert.equal(recent.exitCode, 0);
  // Looking changed nothing: the task is still held by the dead worker.
  assert.equal((await store.tasks.get(claimed.task.id))!.leaseOwner, 'dead-worker');
  assert.equal((await store.runs.get(run.id))!.state, 'running');

  // Ready tasks overdue by more than a heartbeat and no live worker: nothing will run them (issue 17).
  await forge(store, "UPDATE tasks SET run_at = ? WHERE state = 'queued'", [Date.now() - 54_000]);
  const starving = await doctor(url);
  assert.equal(starving.exitCode, 1, starving.text);
  assert.equal(statusOf(starving.report, 'queue'), 'fail');
  assert.match(starving.report.checks.find((c) => c.name === 'queue')!.detail, /0 live worker\(s\).*nothing is leasing/);
  // A worker that died a moment ago (fresh heartbeat, no process on this host) is no live worker.
  await store.workers.register({ id: 'wrk_gone', pid: 2 ** 22 + 1, host: hostname() }, Date.now());
  assert.equal(statusOf((await doctor(url)).report, 'queue'), 'fail');
  // A live one (this process) is: the queue is only behind (within --stuck-after, fine).
  await store.workers.register({ id: 'wrk_live', pid: process.pid, host: hostname() }, Date.now());
  const behind = await doctor(url);
  assert.equal(statusOf(behind.report, 'queue'), 'ok', behind.text);
  assert.match(behind.report.checks.find((c) => c.name === 'queue')!.detail, /1 live worker\(s\)/);
  await store.workers.stop('wrk_live', Date.now());

  const { known } = await store.schemaStatus();
  await forge(store, 'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [known + 1, 'from_the_future', now]);
  const newer = await doctor(url);
  assert.equal(newer.exitCode, 1);
  assert.equal(statusOf(newer.report, 'schema'), 'fail');
  assert.match(newer.report.checks.find((c) => c.name === 'schema')!.detail, /newer than this Spine knows/);
  assert.equal(statusOf(newer.report, 'queue'), 'skip');
});

test('doctor on a database that cannot be reached exits 1 at the connectivity check', async () => {
  const url = TEST_DB === 'postgres' ? 'postgres://postgres@127.0.0.1:1/test?schema=nowhere' : 'sqlite:/nonexistent/dir/spine.db';
  const result = await doctorCommand(['--db', url, '--json']);
  const report = JSON.parse(result.stdout!) as Json;
  assert.equal(result.exitCode, 1);
  assert.equal(report.healthy, false);
  assert.equal(statusOf(report, 'connectivity'), 'fail');
});
