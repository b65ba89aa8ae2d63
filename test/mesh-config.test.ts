// The mesh in the config (docs/mesh.md): declared paths compile into the registry with
// their defaults; none declared is pure hub and spoke; an unknown agent, a self-pair, a
// pair declared twice or a bad number is a CONFIG_INVALID naming the field, and the
// CLI exits with the catalogue's usage code without starting anything.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { ConfigError, ERROR_CATALOGUE } from '../src/core/errors.ts';
import { MESH_DEFAULTS } from '../src/core/mesh.ts';
import { loadConfig } from '../src/runtime/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'spine-meshcfg-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'a.ts'), 'export default () => ({ output: null });\n');
const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

function config(body: string): string {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.json5`);
  writeFileSync(file, body);
  return file;
}
const agents = `agents: { a: { kind: 'function', module: './a.ts' }, b: { kind: 'function', module: './a.ts' } }`;

test('declared paths compile with their defaults; none declared is pure hub and spoke', async () => {
  const c = await loadConfig(config(`{ ${agents}, mesh: [{ from: 'a', to: 'b' }, { from: 'b', to: 'a', maxPerMinute: 600, maxHops: 2 }] }`));
  assert.deepEqual(c.registry.mesh, [
    { from: 'a', to: 'b', maxPerMinute: MESH_DEFAULTS.maxPerMinute, maxHops: MESH_DEFAULTS.maxHops },
    { from: 'b', to: 'a', maxPerMinute: 600, maxHops: 2 },
  ]);
  assert.equal((await loadConfig(config(`{ ${agents} }`))).registry.mesh, undefined);
});

test('bad mesh config names each field', async () => {
  await assert.rejects(
    loadConfig(config(`{ ${agents}, mesh: [{ from: 'a', to: 'nobody' }, { from: 'b', to: 'b' }, { from: 'a', to: 'nobody' }, { from: 'b', to: 'a', maxPerMinute: 0, maxHops: 1.5 }, { from: 'a', to: 'b', extra: 1 }] }`)),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      const paths = err.issues.map((i) => i.path).sort();
      assert.deepEqual(paths, ['mesh.3.maxHops', 'mesh.3.maxPerMinute', 'mesh.4.extra']);
      return true;
    },
  );
  await assert.rejects(
    loadConfig(config(`{ ${agents}, mesh: [{ from: 'a', to: 'nobody' }, { from: 'b', to: 'b' }, { from: 'a', to: 'b' }, { from: 'a', to: 'b' }] }`)),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.deepEqual(
        err.issues.map((i) => [i.path, i.message]),
        [
          ['mesh.0.to', 'unknown agent "nobody" (configured: a, b)'],
          ['mesh.1.to', 'an agent cannot have a mesh path to itself ("b")'],
          ['mesh.3', 'the path a → b is declared twice'],
        ],
      );
      return true;
    },
  );
});

test('the CLI refuses a bad mesh with the catalogue’s exit code, naming the field', () => {
  const file = config(`{ ${agents}, mesh: [{ from: 'a', to: 'ghost' }] }`);
  const r = spawnSync(process.execPath, [MAIN, 'mesh', 'log', '--config', file, '--db', `sqlite:${join(dir, 'x.db')}`], { encoding: 'utf8' });
  assert.equal(r.status, ERROR_CATALOGUE.CONFIG_INVALID.exit, r.stderr);
  assert.match(r.stderr, /mesh\.0\.to/);
});
