import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseConfig } from '../src/config/load.ts';
import { loadConfig } from '../src/runtime/config.ts';
import { ConfigError } from '../src/core/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'spine-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function issuesOf(fn: () => unknown): Array<{ path: string; message: string }> {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.issues;
  }
  assert.fail('expected a ConfigError');
}

async function asyncIssuesOf(p: Promise<unknown>): Promise<Array<{ path: string; message: string }>> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.issues;
  }
  assert.fail('expected a ConfigError');
}

const paths = (issues: Array<{ path: string }>) => issues.map((i) => i.path).sort();

describe('config validation', () => {
  it('names the path of every bad field', () => {
    const issues = issuesOf(() =>
      parseConfig('x.json5', {
        agents: {
          a: { kind: 'function' },
          b: { kind: 'command', command: [] },
          c: { kind: 'telepathy' },
          'bad name': { kind: 'function', module: 'x.ts' },
        },
        worker: { concurrency: 0, leaseMs: 'long' },
        retry: { jitter: 'some', maxAttempts: -1 },
        limits: { maxDepth: 1.5 },
        store: { durability: 'yolo' },
        surprise: true,
      }),
    );
    assert.deepEqual(paths(issues), [
      'agents.a.module',
      'agents.b.command',
      'agents.bad name',
      'agents.c.kind',
      'limits.maxDepth',
      'retry.jitter',
      'retry.maxAttempts',
      'store.durability',
      'surprise',
      'worker.concurrency',
      'worker.leaseMs',
    ]);
    assert.match(issues.find((i) => i.path === 'agents.a.module')!.message, /required/);
    assert.match(issues.find((i) => i.path === 'surprise')!.message, /unknown setting/);
  });

  it('rejects a misspelt key instead of ignoring it', () => {
    const issues = issuesOf(() => parseConfig('x.json5', { agents: { a: { kind: 'function', module: 'a.ts', timeoutMS: 5 } } }));
    assert.deepEqual(paths(issues), ['agents.a.timeoutMS']);
  });

  it('reports a file that is not JSON5, and a missing file', async () => {
    const bad = write('bad.json5', '{ agents: ');
    const issues = await asyncIssuesOf(loadConfig(bad));
    assert.match(issues[0]!.message, /not valid JSON5/);
    const missing = await asyncIssuesOf(loadConfig(join(dir, 'nope.json5')));
    assert.match(missing[0]!.message, /file not found/);
  });

  it('checks modules, exports and cross-field rules when compiling', async () => {
    write('agent.ts', 'export default function agent() { return { output: 1 }; }\nexport const notAFunction = 3;\n');
    const file = write(
      'c.json5',
      `{
        agents: {
          ok: { kind: 'function', module: './agent.ts' },
          missing: { kind: 'function', module: './missing.ts' },
          notfn: { kind: 'function', module: './agent.ts', export: 'notAFunction' },
          noexport: { kind: 'function', module: './agent.ts', export: 'nope' },
        },
        tools: { 'x.y': { module: './agent.ts', export: 'nope' } },
        worker: { leaseMs: 1000, heartbeatMs: 1000 },
        retry: { initialMs: 1000, maxMs: 10 },
      }`,
    );
    const issues = await asyncIssuesOf(loadConfig(file));
    assert.deepEqual(paths(issues), [
      'agents.missing.module',
      'agents.noexport.export',
      'agents.notfn.export',
      'retry.maxMs',
      'tools.x.y.export',
      'worker.heartbeatMs',
    ]);
  });

  it('a command agent whose executable or script does not exist is refused at load, naming the field', async () => {
    const file = write(
      'missing-cmd.json5',
      `{ agents: {
          a: { kind: 'command', command: ['python3', 'nowhere.py'] },
          b: { kind: 'command', command: ['./bin/absent-agent'] },
          c: { kind: 'command', command: ['no-such-program-anywhere', '--flag'] },
        } }`,
    );
    await assert.rejects(loadConfig(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(
        err.issues.map((i) => i.path),
        ['agents.a.command.1', 'agents.b.command.0', 'agents.c.command.0'],
      );
      assert.match(err.issues[2]!.message, /not on the PATH/);
      return true;
    });
  });

  it('compiles a valid config with defaults filled in', async () => {
    write('agent2.ts', 'export default function agent() { return { output: 1 }; }\nexport function tool() { return 2; }\n');
    write('agent.py', 'print("{}")\n');
    const file = write(
      'ok.json5',
      `// comments and trailing commas are fine in JSON5
      {
        agents: {
          a: { kind: 'function', module: './agent2.ts', timeoutMs: 1234, retry: { maxAttempts: 7 } },
          py: { kind: 'command', command: ['python3', 'agent.py'] },
        },
        tools: { 'ns.tool': { module: './agent2.ts', export: 'tool' } },
        worker: { leaseMs: 9000 },
      }`,
    );
    const config = await loadConfig(file);
    assert.deepEqual([...config.registry.agents.keys()], ['a', 'py']);
    assert.equal(config.registry.agents.get('a')!.timeoutMs, 1234);
    assert.equal(config.registry.agents.get('a')!.retry.maxAttempts, 7);
    assert.equal(config.registry.agents.get('py')!.retry.maxAttempts, 3);
    assert.equal(config.registry.agents.get('py')!.agent.kind, 'command');
    assert.deepEqual([...config.registry.tools.keys()], ['ns.tool']);
    assert.equal(config.worker.heartbeatMs, 3000, 'heartbeat defaults to a third of the lease');
    assert.equal(config.durability, 'strict');
  });
});
