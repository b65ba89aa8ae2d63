// Traces: a fan-out run whose worker process is SIGKILLed halfway, finished by a new
// worker, exported to an in-memory exporter — one trace and one root per run, every
// span's parent in the trace, the specialists' turns under the commander turn that
// handed off, tools under their turns, the cut turn an error span beside its retry.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { AuditTraces, runSpanIdOf, traceIdOf } from '../src/observability/traces.ts';
import { Children } from './fixtures/child.ts';
import { SPECIALISTS } from './fixtures/scenarios.ts';
import { finished, harness, registry, submit, tempStore, until } from './helpers.ts';
import { systemClock } from '../src/core/clock.ts';
import { silentLogger } from '../src/core/log.ts';
import { exporterFromEnv, startTraceFeed } from '../src/observability/trace-feed.ts';

const RUNS = 4;

test('a fan-out run SIGKILLed halfway has one trace, one root and a connected tree', { timeout: 120_000 }, async (t) => {
  const { store, dir, url, cleanup } = await tempStore('strict');
  const data = join(dir, 'data');
  mkdirSync(data);
  const children = new Children();
  t.after(async () => {
    await children.killAll();
    await cleanup();
  });
  const runs = await Promise.all(Array.from({ length: RUNS }, (_, n) => store.runs.create({ agent: 'commander', input: { n }, maxAttempts: 3, actor: 'test' }, Date.now())));

  // The first worker is killed once it has started specialists' turns: mid-run.
  const first = children.spawn({ db: url, dir: data, scenario: 'fanout', leaseMs: 1_000, heartbeatMs: 200, concurrency: 2, jitterMs: 200, maxReclaims: 100 });
  await first.ready;
  await until('a specialist turn started', async () => (await store.audit.list({ limit: 10_000 })).some((e) => e.kind === 'task.running' && SPECIALISTS.includes(e.agent as never)), 30_000);
  assert.equal((await children.kill(first)).signal, 'SIGKILL');
  const second = children.spawn({ db: url, dir: data, scenario: 'fanout', leaseMs: 1_000, heartbeatMs: 200, concurrency: 4, maxReclaims: 100 });
  await second.ready;
  await until('every run finished', async () => (await store.runs.list({ state: 'running', limit: RUNS })).length === 0, 60_000);

  const exporter = new InMemorySpanExporter();
  const traces = new AuditTraces(exporter);
  traces.fold(await store.audit.list({ limit: 100_000 }));
  await traces.flush();
  const spans = exporter.getFinishedSpans();
  t.after(() => traces.shutdown());
  const reclaimed = (await store.audit.list({ limit: 100_000 })).filter((e) => e.kind === 'task.reclaimed').length;

  for (const { run } of runs) {
    assert.equal((await store.runs.get(run.id))!.state, 'succeeded');
    const mine = spans.filter((s) => s.spanContext().traceId === traceIdOf(run.id));
    const ids = new Set(mine.map((s) => s.spanContext().spanId));
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId ?? null;
    const roots = mine.filter((s) => parentOf(s) === null);
    assert.equal(roots.length, 1, `one root for ${run.id}`);
    assert.equal(roots[0]!.spanContext().spanId, runSpanIdOf(run.id));
    assert.equal(roots[0]!.name, 'spine.run commander');
    for (const s of mine) if (parentOf(s) !== null) assert.ok(ids.has(parentOf(s)!), `${s.name}: its parent is in the trace (no orphan)`);
    const byId = new Map(mine.map((s) => [s.spanContext().spanId, s]));
    const turns = mine.filter((s) => s.name.startsWith('invoke_agent '));
    for (const agent of SPECIALISTS) {
      const own = turns.filter((s) => s.attributes['gen_ai.agent.name'] === agent && s.status.code !== SpanStatusCode.ERROR);
      assert.ok(own.length >= 2, `${agent} has its two turns`);
      for (const s of own) assert.equal(byId.get(parentOf(s)!)!.name, 'invoke_agent commander', `${agent}'s turn hangs under the commander's turn that handed off`);
    }
    const commanderTurns = turns.filter((s) => s.attributes['gen_ai.agent.name'] === 'commander');
    for (const s of commanderTurns) assert.equal(parentOf(s), runSpanIdOf(run.id));
    const tools = mine.filter((s) => s.name === 'execute_tool ledger.write');
    assert.ok(tools.length >= 3, 'three ledger writes (a repeat only after a crash)');
    for (const s of tools) assert.equal(byId.get(parentOf(s)!)!.attributes['gen_ai.operation.name'], 'invoke_agent');
  }
  // Every lease cut by the kill ended its turn as an error span.
  const cut = spans.filter((s) => s.status.code === SpanStatusCode.ERROR && /lease expired/.test(s.status.message ?? ''));
  assert.ok(reclaimed >= 1, 'the kill cut at least one lease (halfway through a turn)');
  assert.equal(cut.length, reclaimed, 'one error span per reclaimed lease');
});

test('the trace feed follows the audit log live: a run is exported once it ends; OTEL_TRACES_EXPORTER picks the exporter', async (t) => {
  const reg = registry({ solo: () => ({ output: 'ok' }) });
  const { store } = await harness(t, reg);
  const exporter = new InMemorySpanExporter();
  const feed = startTraceFeed({ store, clock: systemClock, log: silentLogger, exporter, fromSeq: await store.audit.latestSeq(), pollMs: 50 });
  t.after(() => feed.stop());
  const run = await submit(store, reg, 'solo');
  await finished(store, run.id);
  await until('the run span', () => exporter.getFinishedSpans().some((s) => s.name === 'spine.run solo'));
  const names = exporter.getFinishedSpans().map((s) => s.name);
  assert.deepEqual(names.sort(), ['invoke_agent solo', 'spine.run solo']);
  assert.equal(exporterFromEnv({}), null, 'off by default');
  assert.ok(exporterFromEnv({ OTEL_TRACES_EXPORTER: 'console' }));
  assert.throws(() => exporterFromEnv({ OTEL_TRACES_EXPORTER: 'zipkin' }), /OTEL_TRACES_EXPORTER/);
});
