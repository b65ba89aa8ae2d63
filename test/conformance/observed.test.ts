// The live view's read (store.observed.snapshot) on both backends: the queue per
// agent and state, pending approvals with the oldest, spend per ceiling and per run
// and agent, the outbox per channel.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { forge, tempStore } from '../helpers.ts';

it('snapshot: tasks per agent and state, approvals, budgets, spend, outbox', async (t) => {
  const { store, cleanup } = await tempStore();
  t.after(cleanup);
  const now = Date.now();
  const empty = await store.observed.snapshot(now);
  assert.deepEqual(empty, { tasks: [], approvals: { pending: 0, oldestRequestedAt: null }, budgets: [], spend: [], outbox: [] });

  const a = (await store.runs.create({ agent: 'alpha', input: null, maxAttempts: 3, actor: 'test' }, now)).run;
  await store.runs.create({ agent: 'alpha', input: null, maxAttempts: 3, actor: 'test' }, now);
  await store.runs.create({ agent: 'beta', input: null, maxAttempts: 3, actor: 'test' }, now);
  await forge(store, `INSERT INTO budgets (key, spent_micros, reserved_micros, spent_tokens, reserved_tokens, updated_at) VALUES ('cost:daily:agent:alpha:2026-12-07', 1500000, 250000, 900, 100, ?), ('cost:daily:old', 1, 0, 0, 0, ?)`, [now, now - 30 * 86_400_000]);
  await forge(store, `INSERT INTO reservations (id, run_id, task_id, keys, micros, tokens, state, created_at, expires_at, settled_micros, settled_tokens, finished_at) VALUES ('r1', ?, ?, '[]', 250000, 100, 'reserved', ?, ?, NULL, NULL, NULL), ('r2', ?, ?, '[]', 500000, 50, 'settled', ?, ?, 400000, 40, ?)`, [a.id, a.rootTaskId, now, now + 60_000, a.id, a.rootTaskId, now, now + 60_000, now]);

  const s = await store.observed.snapshot(now);
  const byAgent = Object.fromEntries(s.tasks.map((x) => [`${x.agent}/${x.state}`, x.count]));
  assert.deepEqual(byAgent, { 'alpha/queued': 2, 'beta/queued': 1 });
  assert.deepEqual(s.budgets, [{ key: 'cost:daily:agent:alpha:2026-12-07', spentMicros: 1_500_000, reservedMicros: 250_000, spentTokens: 900, reservedTokens: 100, updatedAt: now }]);
  assert.deepEqual(s.spend, [{ runId: a.id, agent: 'alpha', reservedMicros: 250_000, settledMicros: 400_000, settledTokens: 40 }]);
  assert.deepEqual(s.approvals, { pending: 0, oldestRequestedAt: null });
});
