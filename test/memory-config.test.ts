// Shared memory in the config: grants, recall and scope policies compile into the
// registry; a malformed grant pattern, scope policy or unknown contract is a
// CONFIG_INVALID naming the field, and nothing starts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ConfigError } from '../src/core/errors.ts';
import { loadConfig } from '../src/runtime/config.ts';
import { scopePolicyFor } from '../src/memory/settings.ts';

const dir = mkdtempSync(join(tmpdir(), 'spine-memcfg-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'a.ts'), 'export default () => ({ output: null });\n');

function config(body: string): string {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.json5`);
  writeFileSync(file, body);
  return file;
}

test('grants.memory, recall and memory.scopes compile into the registry', async () => {
  const c = await loadConfig(
    config(`{
      contracts: { 'finding@1': { schema: { type: 'object' } } },
      memory: { scopes: [{ match: 'team/research/*', onConflict: 'merge-json', contract: 'finding@1' }], maxValueBytes: 1000 },
      agents: { a: { kind: 'function', module: './a.ts', grants: { memory: { read: ['team/*', 'run/*'], write: ['agent/self/*'] } }, recall: [{ query: '{{input.text}}' }] } },
    }`),
  );
  const reg = c.registry;
  assert.deepEqual(reg.policy.memoryGrants('a'), { read: ['team/*', 'run/*'], write: ['agent/self/*'] });
  assert.deepEqual(reg.agents.get('a')!.recall, [{ scope: null, query: '{{input.text}}', k: 5 }]);
  assert.equal(reg.memory.maxValueBytes, 1000);
  assert.equal(scopePolicyFor(reg.memory, 'team/research/x').onConflict, 'merge-json');
  assert.equal(scopePolicyFor(reg.memory, 'team/research').contract, 'finding@1');
  assert.equal(scopePolicyFor(reg.memory, 'team/ops').onConflict, 'reject', 'the default');
  assert.equal(reg.policy.memoryWriteGranted('a', 'run_1', 'agent/a/notes'), true);
  assert.equal(reg.policy.memoryWriteGranted('a', 'run_1', 'agent/b/notes'), false);
});

test('bad memory config names the field', async () => {
  await assert.rejects(
    loadConfig(
      config(`{
        memory: { scopes: [{ match: 'teams/*' }, { match: 'team/*', contract: 'nope@1' }, { match: 'team/a*b' }] },
        agents: { a: { kind: 'function', module: './a.ts', grants: { memory: { read: ['team/*/x'], write: ['folks/x'] } }, recall: [{ query: '' }] } },
      }`),
    ),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.deepEqual(err.issues.map((i) => i.path).sort(), [
        'agents.a.grants.memory.read.0',
        'agents.a.grants.memory.write.0',
        'agents.a.recall.0.query',
        'memory.scopes.0.match',
        'memory.scopes.2.match',
      ]);
      return true;
    },
  );
  await assert.rejects(
    loadConfig(config(`{ memory: { scopes: [{ match: 'team/*', contract: 'nope@1' }] }, agents: { a: { kind: 'function', module: './a.ts' } } }`)),
    (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.path === 'memory.scopes.0.contract' && /unknown contract nope@1/.test(i.message)),
  );
});
