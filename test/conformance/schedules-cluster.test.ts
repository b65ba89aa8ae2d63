import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ManualClock } from '../../src/core/clock.ts';
import type { FieldIssue } from '../../src/core/errors.ts';
import { Intake } from '../../src/intake/intake.ts';
import { compileSchedules } from '../../src/intake/schedules/config.ts';
import { Scheduler } from '../../src/intake/schedules/scheduler.ts';
import { compileBindings } from '../../src/routing/bindings.ts';
import { compileSessions } from '../../src/routing/sessions.ts';
import type { Store } from '../../src/store/store.ts';
import { registry, tempStore, until } from '../helpers.ts';

/** Schedules across real processes: issue 5's "a schedule fires once across the cluster". */

const CHILD = fileURLToPath(new URL('../fixtures/schedule-child.ts', import.meta.url));

interface Child {
  proc: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnChild(args: string[]): Child {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.SPINE_FAULTS;
  const proc = spawn(process.execPath, [CHILD, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return { proc, out: () => out, err: () => err, exited };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function cronEnvelopes(store: Store) {
  return (await store.envelopes.list({ limit: 10_000 })).filter((e) => e.channel === 'cron');
}

async function auditKinds(store: Store, kind: string) {
  return (await store.audit.list({ limit: 10_000 })).filter((e) => e.kind === kind);
}

describe('schedules across processes', () => {
  it('3 processes running a per-second cron: each fire makes exactly one envelope', async (t) => {
    const { store, url, cleanup } = await tempStore();
    t.after(cleanup);
    const children = [0, 1, 2].map(() => spawnChild(['--mode', 'real', '--db', url]));
    t.after(() => children.forEach((c) => c.proc.exitCode === null && c.proc.kill('SIGKILL')));
    // Readiness and progress are awaited as states (bounded generously), never as fixed sleeps: a loaded machine is slow.
    await Promise.all(children.map((c, i) => waitFor(`child ${i} ready (stderr: ${c.err()})`, () => c.out().includes('ready'), 60_000)));
    await until('two fires', async () => (await cronEnvelopes(store)).length >= 2, 60_000);
    children.forEach((c) => c.proc.kill('SIGTERM'));
    const exits = await Promise.all(children.map((c) => c.exited));
    assert.deepEqual(
      exits.map((e) => e.code),
      [0, 0, 0],
      children.map((c) => c.err()).join('\n'),
    );
    const recorded = children.map((c) => (JSON.parse(c.out().split('\n').find((l) => l.startsWith('{'))!) as { fired: number }).fired);

    const envelopes = await cronEnvelopes(store);
    const times = envelopes.map((e) => Date.parse((e.data as { fireAt: string }).fireAt)).sort((a, b) => a - b);
    assert.ok(times.length >= 2, `expected at least 2 fires, got ${times.length}`);
    assert.equal(new Set(envelopes.map((e) => e.idempotencyKey)).size, envelopes.length);
    // Every second between the first and the last fire, once: none missed, none doubled.
    times.forEach((t, i) => i > 0 && assert.equal(t - times[i - 1]!, 1_000));
    assert.equal((await auditKinds(store, 'schedule.fired')).length, envelopes.length);
    assert.equal((await auditKinds(store, 'schedule.skipped')).length, 0);
    assert.equal(
      recorded.reduce((a, b) => a + b, 0),
      envelopes.length,
    );
    const state = await store.schedules.get('tick');
    assert.equal(state?.fires, envelopes.length);
    assert.equal(state?.claim, null);
  });

  for (const kill of ['before-accept', 'after-accept'] as const) {
    it(`SIGKILL after the claim, ${kill}: the next process finishes the fire, exactly once`, async (t) => {
      const { store, url, cleanup } = await tempStore();
      t.after(cleanup);
      const start = Date.UTC(2026, 0, 5, 8, 30);
      const fire = Date.UTC(2026, 0, 5, 9);
      const child = spawnChild(['--mode', 'crash', '--db', url, '--start', String(start), '--fire', String(fire + 10), '--kill', kill]);
      const exit = await child.exited;
      assert.equal(exit.signal, 'SIGKILL', child.err());
      const open = await store.schedules.get('x');
      assert.deepEqual(open?.claim?.fires, [fire]);
      assert.equal(open?.nextFireAt, fire + 3_600_000);
      assert.equal((await cronEnvelopes(store)).length, kill === 'before-accept' ? 0 : 1);

      // A restart half an hour later (catchUp skip: a *missed* fire would be skipped, but this one was claimed).
      const clock = new ManualClock(fire + 1_800_000);
      const reg = registry({ ops: () => ({ output: 'ok' }) });
      const names = [...reg.agents.keys()];
      const issues: FieldIssue[] = [];
      const routing = { bindings: compileBindings([{ match: { channel: 'cron' }, agent: 'ops' }], names, issues), sessions: compileSessions(undefined, issues) };
      const scheduler = new Scheduler({ store, intake: new Intake(store, reg, routing, clock), schedules: compileSchedules({ x: { cron: '0 * * * *' } }, issues, names), clock });
      await scheduler.start();
      await scheduler.stop();
      const envelopes = await cronEnvelopes(store);
      assert.deepEqual(
        envelopes.map((e) => e.idempotencyKey),
        [`cron:x:${new Date(fire).toISOString()}`],
      );
      assert.equal((await auditKinds(store, 'schedule.fired')).length, 1);
      assert.equal((await auditKinds(store, 'schedule.skipped')).length, 0);
      const state = await store.schedules.get('x');
      assert.equal(state?.claim, null);
      assert.equal(state?.fires, 1);
      assert.equal(state?.lastFireAt, fire);
    });
  }
});
