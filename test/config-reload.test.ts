import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CompiledConfig } from '../src/config/load.ts';
import { ConfigWatcher } from '../src/config/watch.ts';
import { loadConfig } from '../src/runtime/config.ts';
import type { Logger } from '../src/core/log.ts';
import { until } from './helpers.ts';

function capture(): Logger & { errors: string[]; infos: string[] } {
  const errors: string[] = [];
  const infos: string[] = [];
  return {
    errors,
    infos,
    info: (m, f) => infos.push(`${m} ${JSON.stringify(f ?? {})}`),
    warn: () => {},
    error: (m, f) => errors.push(`${m} ${JSON.stringify(f ?? {})}`),
  };
}

const config = (agents: string[]) => `{ agents: { ${agents.map((a) => `${a}: { kind: 'function', module: './agent.ts' }`).join(', ')} } }`;

test('a changed config file is reloaded; an invalid one is rejected and the old one stays in force', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spine-reload-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'agent.ts'), 'export default () => ({ output: 1 });\n');
  const file = join(dir, 'spine.config.json5');
  writeFileSync(file, config(['a']));

  const seen: CompiledConfig[] = [];
  const log = capture();
  const watcher = new ConfigWatcher(file, (c) => seen.push(c), log, { load: (f) => loadConfig(f) });
  watcher.start();
  t.after(() => watcher.stop());

  // A valid change is picked up by the file watch.
  writeFileSync(file, config(['a', 'b']));
  await until('the valid change is reloaded', () => seen.length === 1);
  assert.deepEqual([...seen[0]!.registry.agents.keys()], ['a', 'b']);

  // An invalid change is refused with the field named, and nothing is swapped in.
  writeFileSync(file, `{ agents: { a: { kind: 'function', module: './missing.ts' } } }`);
  await until('the invalid change is rejected', () => log.errors.length === 1);
  assert.match(log.errors[0]!, /previous config stays in force/);
  assert.match(log.errors[0]!, /agents\.a\.module/);
  assert.equal(seen.length, 1, 'the running config was not replaced');

  // Fixing the file brings the new config in.
  writeFileSync(file, config(['c']));
  await until('the fixed change is reloaded', () => seen.length === 2);
  assert.deepEqual([...seen[1]!.registry.agents.keys()], ['c']);
});

test('several quick writes reload once, to the last content', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spine-reload-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'agent.ts'), 'export default () => ({ output: 1 });\n');
  const file = join(dir, 'spine.config.json5');
  writeFileSync(file, config(['a']));
  const seen: CompiledConfig[] = [];
  const watcher = new ConfigWatcher(file, (c) => seen.push(c), capture(), { load: (f) => loadConfig(f) });
  watcher.start();
  t.after(() => watcher.stop());
  for (const agents of [['b'], ['b', 'c'], ['b', 'c', 'd']]) writeFileSync(file, config(agents));
  await until('a reload happened', () => seen.length >= 1);
  await watcher.reload();
  assert.deepEqual([...seen.at(-1)!.registry.agents.keys()], ['b', 'c', 'd']);
  assert.ok(seen.length <= 2, `debounced: ${seen.length} reloads`);
});
