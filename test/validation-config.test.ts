// Gates in spine.config.json5 (validation.gates): a gate naming an unknown agent, tool
// or contract, an invalid regex or JSON path, or a setting that cannot work is refused
// at config load, naming the field; a good config compiles into the registry.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../src/core/errors.ts';
import { loadConfig } from '../src/runtime/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'spine-gates-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'agent.ts'), 'export default () => ({ output: null });\n');
writeFileSync(join(dir, 'tool.ts'), 'export default () => null;\n');

function config(gates: unknown[]): string {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      agents: { writer: { kind: 'function', module: './agent.ts' }, judge: { kind: 'function', module: './agent.ts' } },
      tools: { 'notes.save': { module: './tool.ts' } },
      contracts: { 'answer@1': { schema: { type: 'object' } } },
      validation: { gates },
    }),
  );
  return file;
}

async function issuesOf(gates: unknown[]): Promise<Array<{ path: string; message: string }>> {
  try {
    await loadConfig(config(gates));
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues;
  }
  assert.fail('expected a ConfigError');
}

describe('validation.gates config', () => {
  it('compiles gates into the registry, with a config version', async () => {
    const cfg = await loadConfig(
      config([
        { id: 'shape', on: 'output', kind: 'schema', contract: 'answer@1' },
        { id: 'short', on: 'toolResult', tools: ['notes.*'], kind: 'rule', rules: [{ path: '$.text', maxLength: 100, regex: '^[a-z ]*$', flags: 'i' }] },
        { id: 'judge', on: 'handoffResult', agents: ['writer'], kind: 'agent', agent: 'judge', onFail: 'reask', maxReasks: 2, mode: 'shadow' },
        { id: 'ask', on: 'deliver', kind: 'human', approvers: 'editors' },
      ]),
    );
    assert.deepEqual(cfg.registry.gates.map((g) => [g.id, g.on, g.kind]), [
      ['shape', 'output', 'schema'],
      ['short', 'toolResult', 'rule'],
      ['judge', 'handoffResult', 'agent'],
      ['ask', 'deliver', 'human'],
    ]);
    assert.match(cfg.registry.gatesVersion ?? '', /^[0-9a-f]{12}$/);
  });

  it('refuses unknown agents, tools and contracts, bad regexes and paths, naming each field', async () => {
    const issues = await issuesOf([
      { id: 'a', on: 'output', agents: ['ghost'], kind: 'schema', contract: 'nope@1' },
      { id: 'b', on: 'tool', tools: ['notes.burn'], kind: 'rule', rules: [{ regex: '(unclosed' }, { path: 'answer', maxLength: 3 }] },
      { id: 'c', on: 'output', kind: 'agent', agent: 'oracle' },
      { id: 'd', on: 'output', kind: 'human' },
      { id: 'e', on: 'output', kind: 'rule', rules: [{ maxLength: 3 }], onFail: 'fix' },
      { id: 'f', on: 'deliver', tools: ['notes.save'], kind: 'rule', rules: [{}] },
      { id: 'a', on: 'telepathy', kind: 'rule', rules: [{ maxLength: 1 }] },
    ]);
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i.message]));
    assert.match(byPath['validation.gates.6.on'] ?? '', /output|expected/i, JSON.stringify(issues));
    // The schema refuses the bad crossing first; the rest is checked once it parses.
    const more = await issuesOf([
      { id: 'a', on: 'output', agents: ['ghost'], kind: 'schema', contract: 'nope@1' },
      { id: 'b', on: 'tool', tools: ['notes.burn'], kind: 'rule', rules: [{ regex: '(unclosed' }, { path: 'answer', maxLength: 3 }] },
      { id: 'c', on: 'output', kind: 'agent', agent: 'oracle' },
      { id: 'd', on: 'output', kind: 'human' },
      { id: 'e', on: 'output', kind: 'rule', rules: [{ maxLength: 3 }], onFail: 'fix' },
      { id: 'f', on: 'deliver', tools: ['notes.save'], kind: 'rule', rules: [{}] },
      { id: 'a', on: 'tool', kind: 'rule', rules: [{ maxLength: 1 }] },
    ]);
    const m = Object.fromEntries(more.map((i) => [i.path, i.message]));
    assert.match(m['validation.gates.0.agents.0']!, /unknown agent "ghost"/);
    assert.match(m['validation.gates.0.contract']!, /unknown contract nope@1/);
    assert.match(m['validation.gates.1.tools.0']!, /unknown tool "notes.burn"/);
    assert.match(m['validation.gates.1.rules.0.regex']!, /invalid regex/);
    assert.match(m['validation.gates.1.rules.1.path']!, /JSON path/);
    assert.match(m['validation.gates.2.agent']!, /unknown agent "oracle"/);
    assert.match(m['validation.gates.3.kind']!, /tool, handoff, deliver/);
    assert.match(m['validation.gates.4.onFail']!, /only agent gates offer fixes/);
    assert.match(m['validation.gates.5.tools']!, /only tool and toolResult/);
    assert.match(m['validation.gates.5.rules.0']!, /at least one predicate/);
    assert.match(m['validation.gates.6.id']!, /duplicate gate id a/);
  });

  it('refuses a fallback naming an unknown agent, or a loop of fallbacks; breakers settings are checked', async () => {
    const file = join(dir, 'fallbacks.json');
    writeFileSync(
      file,
      JSON.stringify({
        agents: {
          a: { kind: 'function', module: './agent.ts', fallback: 'b' },
          b: { kind: 'function', module: './agent.ts', fallback: 'a' },
          c: { kind: 'function', module: './agent.ts', fallback: 'ghost' },
        },
        validation: { breakers: { failures: 0, errorRate: 2 } },
      }),
    );
    let issues: Array<{ path: string; message: string }> = [];
    try {
      await loadConfig(file);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      issues = err.issues;
    }
    const paths = issues.map((i) => i.path).sort();
    assert.deepEqual(paths, ['validation.breakers.errorRate', 'validation.breakers.failures'], 'the schema refuses first');
    writeFileSync(file, JSON.stringify({ agents: (JSON.parse(readFileSync(file, 'utf8')) as { agents: unknown }).agents, validation: { breakers: { failures: 3 } } }));
    try {
      await loadConfig(file);
      assert.fail('expected a ConfigError');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const m = Object.fromEntries(err.issues.map((i) => [i.path, i.message]));
      assert.match(m['agents.a.fallback']!, /loop \(a → b → a\)/);
      assert.match(m['agents.c.fallback']!, /unknown agent "ghost"/);
    }
  });
});
