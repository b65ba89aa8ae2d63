// What `spine up` loads when nothing asks for MCP, A2A or traces: none of their SDKs
// (about 230 modules and ~20 MB of an idle process). They load on first use; the MCP,
// A2A and trace suites check that they still work when used. An idle `spine up` whose
// config declares no contracts loads no JSON Schema validator either (ajv: ~90 modules,
// ~8 MB); the first contract check loads it (the contract suites use it). Nor, when the
// config names no timezone, does it build an ICU formatter (~10 MB of ICU data read).
// `spine worker` loads no gateway and no HTTP stack (~110 modules, ~10 MB).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Runs `spine <command>` on the example with every module load recorded. With `ready`,
 * stops it (SIGTERM) once its output shows that; without, waits for it to exit. Either
 * way it must exit 0. Returns what it loaded and what it printed.
 */
async function recordLoads(t: TestContext, command: string[], ready?: RegExp): Promise<{ loaded: string[]; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'spine-lazy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const loads = join(dir, 'loads.txt');
  const env = { ...process.env, SPINE_RECORD_LOADS: loads, SPINE_TRACES: 'none', OTEL_TRACES_EXPORTER: '' };
  const child = spawn(
    process.execPath,
    ['--import', './test/fixtures/record-loads.ts', 'src/cli/main.ts', ...command, '--config', 'examples/briefing/spine.config.json5', '--db', `sqlite:${join(dir, 's.db')}`],
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  let out = '';
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const shown = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (ready?.test(out)) resolve();
    });
    void exited.then(() => reject(new Error(`spine ${command[0]} exited before it was ready:\n${out}`)));
  });
  if (ready) {
    await shown;
    child.kill('SIGTERM');
  } else shown.catch(() => {});
  assert.equal(await exited, 0, out);
  return { loaded: readFileSync(loads, 'utf8').split('\n'), out };
}

test('spine up with the example, a run and a clean exit loads no MCP, A2A or OpenTelemetry SDK', async (t) => {
  const { loaded, out } = await recordLoads(t, ['up', '--port', '0', '--send', 'commander', '--text', 'Should we?', '--exit']);
  assert.match(out, /succeeded/);
  assert.ok(loaded.some((u) => u.includes('/src/gateway/app.ts')), 'the gateway ran');
  for (const sdk of ['@modelcontextprotocol/', '@a2a-js/', '@opentelemetry/', '/jose/']) {
    assert.deepEqual(loaded.filter((u) => u.includes(`node_modules/${sdk.replace(/^\//, '')}`)).slice(0, 3), [], `${sdk} loaded`);
  }
});

test('an idle spine up, whose config declares no contracts and no timezone, loads no JSON Schema validator and builds no ICU formatter', async (t) => {
  // Up and serving: the line naming the gateway's address.
  const { loaded } = await recordLoads(t, ['up', '--port', '0'], /gateway http:\/\//);
  assert.ok(loaded.some((u) => u.includes('/src/contracts/registry.ts')), 'the contract registry loaded');
  assert.deepEqual(loaded.filter((u) => /node_modules\/ajv(-formats)?\//.test(u)).slice(0, 3), [], 'ajv loaded');
  assert.ok(loaded.some((u) => u.includes('/src/core/zoned-time.ts')), 'the timezone helper loaded');
  assert.deepEqual(loaded.filter((u) => u.startsWith('intl:')), [], 'an ICU formatter was built');
});

test('spine worker loads no gateway and no HTTP stack', async (t) => {
  const { loaded } = await recordLoads(t, ['worker'], /spine worker: /);
  assert.ok(loaded.some((u) => u.includes('/src/engine/worker.ts')), 'the worker ran');
  for (const part of ['/src/gateway/server.ts', '/src/gateway/app.ts', 'node_modules/hono/', 'node_modules/@hono/', 'node_modules/ws/']) {
    assert.deepEqual(loaded.filter((u) => u.includes(part)).slice(0, 3), [], `${part} loaded`);
  }
});
