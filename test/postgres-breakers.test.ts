// Circuit breakers across real worker processes on PostgreSQL: a breaker opened by
// one `spine worker` process is seen by another, which defers the next task without
// calling the agent or using an attempt.
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { loadConfig } from '../src/runtime/config.ts';
import { PG_ONLY, pgStore } from './fixtures/pg-env.ts';
import { startWorkerProcess, type WorkerProcess } from './fixtures/policy-project.ts';
import { auditOf, finished, submit, until } from './helpers.ts';

it('a breaker opened by one worker process is seen by another', { skip: PG_ONLY }, async (t) => {
  const { store, url } = await pgStore(t, { migrate: true });
  const dir = mkdtempSync(join(tmpdir(), 'spine-pg-breakers-'));
  const callsFile = join(dir, 'calls.log');
  writeFileSync(join(dir, 'flaky.ts'), `import { appendFileSync } from 'node:fs';\nexport default () => { appendFileSync(${JSON.stringify(callsFile)}, 'x\\n'); throw new Error('down'); };\n`);
  writeFileSync(
    join(dir, 'spine.config.json'),
    JSON.stringify({
      agents: { flaky: { kind: 'function', module: './flaky.ts', retry: { maxAttempts: 1 } } },
      validation: { breakers: { failures: 1, cooldownMs: 600_000, refreshMs: 100 } },
    }),
  );
  const workers: WorkerProcess[] = [];
  t.after(async () => {
    for (const w of workers) await w.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const start = async () => {
    const w = startWorkerProcess(dir, ['--db', url, '--config', 'spine.config.json']);
    workers.push(w);
    await w.ready;
    return w;
  };
  const reg = (await loadConfig(join(dir, 'spine.config.json'))).registry;
  const calls = () => (existsSync(callsFile) ? readFileSync(callsFile, 'utf8').split('\n').filter(Boolean).length : 0);

  const a = await start();
  const first = await finished(store, (await submit(store, reg, 'flaky')).id);
  assert.equal(first.state, 'failed');
  const opened = (await store.audit.list({ limit: 1000 })).find((e) => e.kind === 'breaker.opened');
  assert.ok(opened, 'worker A opened the breaker');
  assert.equal((await store.breakers.get('agent:flaky'))!.state, 'open');
  await a.kill('SIGKILL');

  await start();
  const second = await submit(store, reg, 'flaky');
  await until('worker B met the open breaker', async () => (await auditOf(store, second.id)).some((e) => e.kind === 'breaker.rejected'), 30_000);
  const rejected = (await auditOf(store, second.id)).find((e) => e.kind === 'breaker.rejected')!;
  assert.notEqual(rejected.actor, opened.actor, 'another process rejected it');
  assert.equal(calls(), 1, 'the agent was called once, by worker A');
  const [task] = await store.tasks.list({ runId: second.id, limit: 1 });
  assert.equal(task!.attempt, 0, 'no attempt used');
});
