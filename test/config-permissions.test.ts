// A config file, or a module it names, that others can write runs their code as
// Spine's user: refused at load and on reload (as ssh refuses such keys), with the
// path, the mode and the fix named; --allow-insecure-files is the development override.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../src/core/errors.ts';
import { ConfigWatcher } from '../src/config/watch.ts';
import { loadConfig } from '../src/runtime/config.ts';
import { until } from './helpers.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

function project(): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'spine-perm-'));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'agent.ts'), 'export default () => ({ output: 1 });\n');
  const file = join(dir, 'spine.config.json5');
  writeFileSync(file, `{ agents: { a: { kind: 'function', module: './agent.ts' } } }`);
  chmodSync(file, 0o644);
  return { dir, file };
}

const refused = async (file: string, pattern: RegExp) =>
  assert.rejects(loadConfig(file), (err: unknown) => err instanceof ConfigError && pattern.test(err.issues.map((i) => `${i.path}: ${i.message}`).join('\n')));

test('a world- or group-writable config, folder or module is refused at load; the override lets it through', { skip: process.platform === 'win32' }, async (t) => {
  const { dir, file } = project();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await loadConfig(file);

  chmodSync(file, 0o666);
  await refused(file, /file .*spine\.config\.json5 is writable by everyone \(mode 0666\).*chmod go-w/);
  chmodSync(file, 0o664);
  await refused(file, /writable by its group \(mode 0664\)/);
  chmodSync(file, 0o644);

  chmodSync(join(dir, 'agent.ts'), 0o666);
  await refused(file, /agents\.a\.module: file .*agent\.ts is writable by everyone/);
  chmodSync(join(dir, 'agent.ts'), 0o644);

  const sub = join(dir, 'mods');
  mkdirSync(sub);
  chmodSync(sub, 0o777);
  writeFileSync(join(sub, 'tool.ts'), 'export default () => 1;\n');
  writeFileSync(file, `{ agents: { a: { kind: 'function', module: './agent.ts' } }, tools: { t: { module: './mods/tool.ts' } } }`);
  await refused(file, /tools\.t\.module: folder .*mods is writable by everyone \(mode 0777\)/);

  // The CLI names it and exits 2; the flag is the development override.
  chmodSync(sub, 0o755);
  chmodSync(file, 0o666);
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.SPINE_ALLOW_INSECURE_FILES;
  const cli = spawnSync(process.execPath, [MAIN, 'agents', 'list', '--config', file], { cwd: dir, env, encoding: 'utf8' });
  assert.equal(cli.status, 2, cli.stderr);
  assert.match(cli.stderr, /writable by everyone/);
  const dev = spawnSync(process.execPath, [MAIN, 'agents', 'list', '--config', file, '--allow-insecure-files'], { cwd: dir, env, encoding: 'utf8' });
  assert.equal(dev.status, 0, dev.stderr);
});

test('a reload of a config made world-writable is rejected; the running config stays', { skip: process.platform === 'win32' }, async (t) => {
  const { dir, file } = project();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const errors: string[] = [];
  const seen: unknown[] = [];
  const log = { info() {}, warn() {}, error: (m: string, f?: Record<string, unknown>) => void errors.push(`${m} ${JSON.stringify(f ?? {})}`) };
  const watcher = new ConfigWatcher(file, (c) => seen.push(c), log, { load: (f) => loadConfig(f) });
  t.after(() => watcher.stop());
  writeFileSync(file, `{ agents: { b: { kind: 'function', module: './agent.ts' } } }`);
  chmodSync(file, 0o666);
  await watcher.reload();
  await until('the reload is refused', () => errors.length === 1);
  assert.match(errors[0]!, /previous config stays in force.*writable by everyone/);
  assert.equal(seen.length, 0);
});
