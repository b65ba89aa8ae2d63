// Shutdown on a full disk: `spine up` on PostgreSQL is sent SIGTERM while every write
// fails as a full disk makes it fail (SQLSTATE 53100, from a trigger on every table),
// with a turn in flight whose lease the drain must hand back. It drains, says the
// shutdown is incomplete and exits 5 (unavailable) — no unhandled rejection, no crash.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { injectFault } from './fixtures/store-faults.ts';
import { PG_ONLY } from './fixtures/pg-env.ts';
import { tempStore, until } from './helpers.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

describe('shutdown on a full disk', { skip: PG_ONLY }, () => {
  it('SIGTERM while writes fail with disk full: drains and exits 5, no unhandled rejection', { timeout: 120_000 }, async (t) => {
    const { store, dir, url, cleanup } = await tempStore();
    t.after(cleanup);
    writeFileSync(
      join(dir, 'slow.ts'),
      'export default (_input, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true }));\n',
    );
    writeFileSync(join(dir, 'spine.config.json5'), JSON.stringify({ agents: { slow: { kind: 'function', module: './slow.ts' } }, worker: { drainMs: 100, leaseMs: 5_000 } }));
    const env = { ...process.env };
    delete env.SPINE_DB;
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, [MAIN, 'up', '--db', url, '--port', '0', '--send', 'slow', '--text', 'hold'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => void child.kill('SIGKILL'));
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await until('the turn is running', async () => (await store.tasks.list({ limit: 10 })).some((x) => x.state === 'running'), 30_000).catch((e: unknown) => {
      throw new Error(`${String(e)}\nstdout:\n${out}\nstderr:\n${err}`);
    });
    await injectFault(store, 'disk-full');
    child.kill('SIGTERM');
    // Its exit is the event; one that hangs (the old behaviour) hits the test's timeout.
    const code = await exited;
    assert.doesNotMatch(err, /unhandled|UnhandledPromiseRejection|triggerUncaughtException/i, err);
    assert.equal(code, 5, `exit ${code}\nstdout:\n${out}\nstderr:\n${err}`);
    assert.match(err, /shutdown incomplete|stop failed/);
  });
});
