// `kind: 'llm'` in the config file: every mistake names its field; environment
// references are read only when the agent is used.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LlmAgent } from '../src/agents/llm/agent.ts';
import { parseConfig } from '../src/config/load.ts';
import { compileConfig, loadConfig } from '../src/runtime/config.ts';
import { ConfigError } from '../src/core/errors.ts';
import { finished, harness, submit } from './helpers.ts';
import { build } from './fixtures/llm-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'spine-llm-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function issuesOf(fn: () => unknown): Array<{ path: string; message: string }> {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.issues;
  }
  assert.fail('expected a ConfigError');
}

const writer = (extra: Record<string, unknown>) => ({ agents: { writer: { kind: 'llm', models: [{ provider: 'openai', model: 'gpt-4o-mini' }], ...extra } } });

describe('llm agent config', () => {
  it('schema mistakes name the field', () => {
    const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
      ['an unknown provider', { models: [{ provider: 'gemini', model: 'x' }] }, 'agents.writer.models.0.provider', /openai.*anthropic/],
      ['no models', { models: [] }, 'agents.writer.models', /at least one model/],
      ['a model without a name', { models: [{ provider: 'openai' }] }, 'agents.writer.models.0.model', /required/],
      ['a key that is neither a string nor {env}', { models: [{ provider: 'openai', model: 'm', apiKey: 5 }] }, 'agents.writer.models.0.apiKey', /\{env: "NAME"\}/],
      ['a bad env name', { models: [{ provider: 'openai', model: 'm', apiKey: { env: 'MY-KEY' } }] }, 'agents.writer.models.0.apiKey.env', /environment variable name/],
      ['a typo in a model', { models: [{ provider: 'openai', model: 'm', maxToken: 5 }] }, 'agents.writer.models.0.maxToken', /unknown setting/],
      ['negative pricing', { models: [{ provider: 'openai', model: 'm', pricing: { inputPer1M: -1, outputPer1M: 1 } }] }, 'agents.writer.models.0.pricing.inputPer1M', /./],
      ['a typo at the agent', { model: 'gpt-4o' }, 'agents.writer.model', /unknown setting/],
      ['a bad system prompt', { system: 5 }, 'agents.writer.system', /\{file: "path"\}/],
    ];
    for (const [what, extra, path, message] of cases) {
      const issues = issuesOf(() => parseConfig('x.json5', writer(extra)));
      const hit = issues.find((i) => i.path === path);
      assert.ok(hit, `${what}: expected an issue at ${path}, got ${JSON.stringify(issues)}`);
      assert.match(hit.message, message, what);
    }
  });

  it('checks made when the agent is built name the field too', () => {
    const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
      ['pinned with a chain', { pinned: true, models: [{ provider: 'openai', model: 'a' }, { provider: 'openai', model: 'b' }] }, 'agents.writer.pinned', /exactly one model \(found 2\)/],
      ['a baseURL that is not a URL', { models: [{ provider: 'openai', model: 'a', baseURL: 'localhost:11434' }] }, 'agents.writer.models.0.baseURL', /not an http\(s\) URL/],
      ['a temperature for anthropic', { models: [{ provider: 'anthropic', model: 'a', temperature: 0.2 }] }, 'agents.writer.models.0.temperature', /anthropic/],
      ['a missing prompt file', { system: { file: './nope.md' } }, 'agents.writer.system.file', /cannot read .*nope\.md/],
    ];
    for (const [what, extra, path, message] of cases) {
      const { agent, issues } = build({ models: [{ provider: 'openai', model: 'gpt-4o-mini' }], ...extra }, dir);
      assert.equal(agent, null, what);
      assert.equal(issues[0]?.path, path, `${what}: ${JSON.stringify(issues)}`);
      assert.match(issues[0].message, message, what);
    }
  });

  it('a system prompt from a file, relative to the config file', async () => {
    writeFileSync(join(dir, 'writer.md'), 'You write briefs.');
    const file = join(dir, 'spine.config.json5');
    writeFileSync(file, JSON.stringify(writer({ system: { file: './writer.md' } })));
    const config = await loadConfig(file);
    const agent = config.registry.agents.get('writer')?.agent;
    assert.ok(agent instanceof LlmAgent);
    assert.equal(agent.kind, 'llm');
  });

  it('an unset {env} key is not a config error: other agents run; the LLM agent fails when used, naming the field, without retries', async (t) => {
    delete process.env.SPINE_TEST_UNSET_KEY;
    writeFileSync(join(dir, 'echo.ts'), 'export default function echo(turn) { return { output: turn.task.input }; }\n');
    const raw = parseConfig('x.json5', {
      agents: {
        echo: { kind: 'function', module: './echo.ts' },
        writer: { kind: 'llm', models: [{ provider: 'anthropic', model: 'claude-x', apiKey: { env: 'SPINE_TEST_UNSET_KEY' } }] },
      },
      retry: { maxAttempts: 3, initialMs: 1, maxMs: 5 },
    });
    const config = await compileConfig(join(dir, 'spine.config.json5'), raw);
    const reg = config.registry;
    const { store } = await harness(t, reg);
    const ok = await finished(store, (await submit(store, reg, 'echo', { text: 'hi' })).id);
    assert.deepEqual([ok.state, ok.output], ['succeeded', { text: 'hi' }]);
    const bad = await finished(store, (await submit(store, reg, 'writer', { text: 'hi' })).id);
    assert.equal(bad.state, 'failed');
    assert.equal(bad.error?.code, 'CONFIG_INVALID');
    assert.equal(bad.error?.retryable, false);
    assert.match(bad.error?.message ?? '', /agents\.writer\.models\.0\.apiKey: environment variable SPINE_TEST_UNSET_KEY is not set/);
    const task = await store.tasks.get((await store.runs.list({ limit: 10 })).find((r) => r.id === bad.id)!.rootTaskId);
    assert.equal(task?.attempt, 1, 'not retried: retrying cannot set a variable');
  });
});
