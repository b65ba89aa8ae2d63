// The interop aggregates on both backends: the MCP tool catalog (replaced per server,
// read by commands that do not connect), and usage: each turn's reported tokens and
// cost, their sum and the run's reserved and settled spend — in the store, in the
// `turn.answered` audit event, and as `spine runs show` prints it (text and --json).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ManualClock } from '../../src/core/clock.ts';
import type { FieldIssue } from '../../src/core/errors.ts';
import type { Json, TurnInput } from '../../src/core/types.ts';
import type { RunUsage } from '../../src/core/usage.ts';
import { runUsage } from '../../src/engine/usage.ts';
import { Worker } from '../../src/engine/worker.ts';
import { compilePolicy, policySchema } from '../../src/policy/rules.ts';
import { submitRun } from '../fixtures/submit-run.ts';
import { FAST_WORKER, auditOf, registry, tempStore } from '../helpers.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

function spine(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.SPINE_DB;
    delete env.SPINE_CONFIG;
    const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the MCP tool catalog in the store', () => {
  it('replaces one server’s tools at a time and lists them all', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const tool = (name: string, extra: Partial<{ description: string | null; inputSchema: Json | null; sideEffect: 'read' | 'write' | 'external' }> = {}) => ({
      name,
      description: null,
      inputSchema: null,
      sideEffect: 'external' as const,
      ...extra,
    });
    await store.mcpTools.replace('everything', [tool('everything.echo', { description: 'Echo', inputSchema: { type: 'object', properties: { message: { type: 'string' } } }, sideEffect: 'read' }), tool('everything.add')], 1000);
    await store.mcpTools.replace('github', [tool('github.create_issue')], 1001);
    assert.deepEqual(
      (await store.mcpTools.list()).map((r) => [r.name, r.server, r.refreshedAt]),
      [
        ['everything.add', 'everything', 1000],
        ['everything.echo', 'everything', 1000],
        ['github.create_issue', 'github', 1001],
      ],
    );
    const [, echo] = await store.mcpTools.list();
    assert.deepEqual(echo, { name: 'everything.echo', server: 'everything', description: 'Echo', inputSchema: { type: 'object', properties: { message: { type: 'string' } } }, sideEffect: 'read', refreshedAt: 1000 });
    // The server now lists one tool: the other goes; the other server's stay.
    await store.mcpTools.replace('everything', [tool('everything.echo')], 2000);
    assert.deepEqual((await store.mcpTools.list()).map((r) => [r.name, r.refreshedAt]), [['everything.echo', 2000], ['github.create_issue', 1001]]);
    await store.mcpTools.replace('github', [], 3000);
    assert.deepEqual((await store.mcpTools.list()).map((r) => r.name), ['everything.echo']);
  });
});

describe('usage per turn and per run', () => {
  it('each turn’s tokens and cost, their sum, reserved and settled spend: store, audit, and `spine runs show`', async (t) => {
    const { store, url, cleanup } = await tempStore();
    const clock = new ManualClock(Date.now());
    const thinker = (input: TurnInput) => {
      const usage = { inputTokens: 100 * input.task.turn, outputTokens: 10, costUsd: 0.01 * input.task.turn };
      return input.task.turn < 3 ? { actions: [], usage } : { output: 'thought', usage };
    };
    const rules: Json[] = [{ id: 'per-run', kind: 'cost', scope: 'run', maxUsd: 1 }];
    const issues: FieldIssue[] = [];
    const policy = compilePolicy(policySchema.parse({ rules }), issues);
    const reg = registry({ thinker: { fn: thinker, cost: { micros: 50_000, tokens: 500 } }, quiet: () => ({ output: 'no usage' }) }, {}, { policy });
    const worker = new Worker({ store, registry: reg, clock, options: FAST_WORKER });
    t.after(async () => {
      await worker.stop();
      await cleanup();
    });
    const { run } = await submitRun(store, reg, { agent: 'thinker', input: null }, clock.now());
    await worker.runOnce();
    assert.equal((await store.runs.get(run.id))?.state, 'succeeded');

    const usage = await runUsage(store, run.id);
    assert.deepEqual(
      usage.turns.map((u) => [u.agent, u.turn, u.inputTokens, u.outputTokens, u.costUsd]),
      [
        ['thinker', 1, 100, 10, 0.01],
        ['thinker', 2, 200, 10, 0.02],
        ['thinker', 3, 300, 10, 0.03],
      ],
    );
    assert.deepEqual(usage.total, { turns: 3, inputTokens: 600, outputTokens: 30, costUsd: 0.06 });
    assert.deepEqual(usage.spend, { reservedUsd: 0, reservedTokens: 0, settledUsd: 0.06, settledTokens: 630 });
    assert.deepEqual(await store.tasks.usage({ taskId: run.rootTaskId }), usage.turns);

    // A reservation held now (a crossing in flight) shows as reserved.
    const held = await store.limits.acquire(
      { takes: [], budgets: [{ ruleId: 'per-run', key: `cost:per-run:run:${run.id}`, maxMicros: 1_000_000, maxTokens: null }], micros: 70_000, tokens: 7, reservationId: 'res-held', runId: run.id, taskId: run.rootTaskId, expiresAt: clock.now() + 60_000 },
      clock.now(),
    );
    assert.equal(held.ok, true);
    assert.deepEqual((await store.limits.runSpend(run.id)).reservedUsd, 0.07);

    // The audit trail: each turn.answered carries its usage.
    const answered = (await auditOf(store, run.id)).filter((e) => e.kind === 'turn.answered');
    assert.deepEqual(
      answered.map((e) => (e.data as { usage: Json }).usage),
      [1, 2, 3].map((n) => ({ inputTokens: 100 * n, outputTokens: 10, costUsd: 0.01 * n })),
    );

    // A run whose agent reports nothing has no usage, and says so.
    const { run: quiet } = await submitRun(store, reg, { agent: 'quiet', input: null }, clock.now());
    await worker.runOnce();
    assert.deepEqual((await runUsage(store, quiet.id)).total, { turns: 0, inputTokens: 0, outputTokens: 0, costUsd: null });

    // `spine runs show`: per turn, the sum, and the spend; --json carries the same.
    const shown = await spine(['runs', 'show', run.id, '--db', url]);
    assert.equal(shown.code, 0, shown.stderr);
    const text = shown.stdout.slice(shown.stdout.indexOf('\nusage'));
    assert.match(text, /thinker\s+1\s+100\s+10\s+\$0\.010000/);
    assert.match(text, /thinker\s+3\s+300\s+10\s+\$0\.030000/);
    assert.match(text, /total\s+3 turns: 600 in \/ 30 out tokens, \$0\.0600/);
    assert.match(text, /spend\s+settled \$0\.060000 \/ 630 tokens; reserved now \$0\.070000 \/ 7 tokens/);
    const json = await spine(['runs', 'show', run.id, '--db', url, '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual((JSON.parse(json.stdout) as { usage: RunUsage }).usage, await runUsage(store, run.id));
    const none = await spine(['runs', 'show', quiet.id, '--db', url]);
    assert.match(none.stdout, /no turn reported usage/);
  });
});
