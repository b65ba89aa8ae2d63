// The bundled example's LLM mode, as `npm run start:llm` runs it: against a loopback
// OpenAI-compatible server (what OPENAI_BASE_URL points Ollama users at), and offline
// when no provider is configured.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../src/runtime/open-store.ts';
import { fakeOpenAI, type FakeProvider, type Recorded, type Step } from './fixtures/llm-servers.ts';

const LAUNCHER = resolve('examples/briefing/start-llm.ts');
let server: FakeProvider;
const dirs: string[] = [];

before(async () => {
  server = await fakeOpenAI();
});
after(async () => {
  await server.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs the launcher in a fresh folder (its store and briefs land there) with only the given provider variables. */
function launch(env: Record<string, string>, args: string[]): Promise<{ code: number | null; out: string; cwd: string }> {
  const cwd = mkdtempSync(join(tmpdir(), 'spine-llm-example-'));
  dirs.push(cwd);
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(OPENAI|ANTHROPIC)_/.test(k)));
  return new Promise((done) => {
    const child = spawn(process.execPath, [LAUNCHER, ...args], { cwd, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, out, cwd });
    });
  });
}

const who = (r: Recorded) => /You are the agent "(\w+)"/.exec(String((r.body.messages as Array<{ content: unknown }>)[0]?.content))?.[1] ?? '?';

/** A scripted model playing the three roles of the example, as the prompts ask. */
function briefingModel(r: Recorded): Step {
  const agent = who(r);
  const messages = r.body.messages as Array<{ role: string; content: string | null; tool_calls?: Array<{ function: { name: string } }> }>;
  // The specialists agree on the effort and disagree on adopting: a tied vote the arbiter settles.
  const claims = (adopt: boolean) => [
    { key: 'adopt', value: adopt, confidence: 0.7, evidence: [] },
    { key: 'migration.effort', value: 'weeks', confidence: 0.5, evidence: [] },
  ];
  if (agent === 'researcher') return { reply: { text: JSON.stringify({ points: ['Crashes lose nothing.', 'One audit trail.'], claims: claims(true) }), usage: { input: 300, output: 20 } } };
  if (agent === 'critic') return { reply: { text: JSON.stringify({ points: ['One more service to run.'], claims: claims(false) }), usage: { input: 300, output: 12 } } };
  if (agent === 'arbiter') return { reply: { text: '{"decision": "decided", "value": true, "rationale": "Crash safety outweighs one more service."}', usage: { input: 200, output: 15 } } };
  const called = messages.flatMap((m) => m.tool_calls ?? []).map((c) => c.function.name);
  const brief = { question: 'Durable orchestrator?', for: ['Crashes lose nothing.', 'One audit trail.'], against: ['One more service to run.'], recommendation: 'Proceed.' };
  if (called.length === 0) {
    return { reply: { calls: [{ name: 'handoff_to_researcher', args: { topic: 'Durable orchestrator?' } }, { name: 'handoff_to_critic', args: { topic: 'Durable orchestrator?' } }], usage: { input: 500, output: 40 } } };
  }
  if (!called.includes('brief_publish')) return { reply: { calls: [{ name: 'brief_publish', args: brief }], usage: { input: 700, output: 90 } } };
  return { reply: { text: JSON.stringify(brief), usage: { input: 800, output: 90 } } };
}

describe('npm run start:llm', () => {
  it('with OPENAI_BASE_URL set, the briefing runs on the model: delegation, publishing and the brief all come from it', async () => {
    server.otherwise = briefingModel;
    const { code, out, cwd } = await launch({ OPENAI_BASE_URL: server.url, OPENAI_MODEL: 'local-llama' }, ['Durable orchestrator?', '--exit', '--no-gateway']);
    assert.equal(code, 0, out);
    assert.match(out, /LLM mode: OpenAI-compatible local-llama at http:\/\/127\.0\.0\.1/);
    assert.match(out, /run run_\w+ succeeded/);
    assert.match(out, /"recommendation": "Proceed\."/);
    const briefs = readdirSync(join(cwd, '.spine', 'briefs'));
    assert.equal(briefs.length, 1);
    assert.match(readFileSync(join(cwd, '.spine', 'briefs', briefs[0]!), 'utf8'), /## Against\n- One more service to run\./);

    const byAgent = (a: string) => server.requests.filter((r) => who(r) === a);
    assert.deepEqual([byAgent('commander').length, byAgent('researcher').length, byAgent('critic').length, byAgent('arbiter').length], [3, 1, 1, 1]);
    // The arbiter saw the tied key with both candidates, and the brief keeps its decision.
    const asked = JSON.parse(String((byAgent('arbiter')[0]!.body.messages as Array<{ content: string }>)[1]!.content)) as { key: string; candidates: unknown[] };
    assert.deepEqual([asked.key, asked.candidates.length], ['adopt', 2]);
    const store = openStore({ url: `sqlite:${join(cwd, '.spine', 'spine.db')}` });
    try {
      const [b] = await store.briefs.list({ limit: 1 });
      assert.deepEqual(b!.parts.map((x) => [x.key, x.value]), [['migration.effort', 'weeks']]);
      assert.deepEqual(b!.conflicts.map((c) => [c.key, c.decision?.value, c.decision?.decider.kind]), [['adopt', true, 'agent']]);
    } finally {
      await store.close();
    }
    const first = byAgent('commander')[0]!;
    assert.equal(first.model, 'local-llama');
    assert.equal(first.headers.authorization, 'Bearer unused', 'a local server needs no key');
    assert.deepEqual(
      (first.body.tools as Array<{ function: { name: string } }>).map((t) => t.function.name),
      ['brief_publish', 'handoff_to_researcher', 'handoff_to_critic', 'handoff_to_arbiter'],
    );
    assert.ok(['json_schema', 'json_object'].includes((first.body.response_format as { type: string }).type));
    assert.match(String((first.body.messages as Array<{ content: string }>)[0]!.content), /You are the commander of a small briefing team/);
    assert.equal((byAgent('researcher')[0]!.body.messages as Array<{ content: string }>)[1]!.content, '{\n  "topic": "Durable orchestrator?"\n}');
  });

  it('without any provider variable it runs the offline example', async () => {
    const { code, out, cwd } = await launch({}, ['--exit', '--no-gateway']);
    assert.equal(code, 0, out);
    assert.match(out, /No model configured .* running the offline example/);
    assert.match(out, /run run_\w+ succeeded/);
    assert.ok(existsSync(join(cwd, '.spine', 'briefs')));
  });
});
