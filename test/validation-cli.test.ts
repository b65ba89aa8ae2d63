// `spine gates list|test|verdicts` and the gates section of `spine runs show`, through
// the real CLI in child processes. `gates test` changes nothing.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/runtime/config.ts';
import { openStore } from '../src/runtime/open-store.ts';
import type { Store } from '../src/store/store.ts';
import { spine } from './fixtures/policy-project.ts';
import { DEFAULT_BREAKERS, outcomeChange } from '../src/validation/breakers.ts';
import { finished, startWorker, submit } from './helpers.ts';

describe('spine gates', () => {
  let dir: string;
  let db: string;
  let store: Store;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spine-gates-cli-'));
    db = `sqlite:${join(dir, 'spine.db')}`;
    writeFileSync(join(dir, 'agent.ts'), "export default () => ({ output: { answer: 'a rather long answer' } });\n");
    writeFileSync(
      join(dir, 'spine.config.json'),
      JSON.stringify({
        agents: { writer: { kind: 'function', module: './agent.ts' } },
        validation: {
          gates: [
            { id: 'brief', on: 'output', kind: 'rule', rules: [{ path: '$.answer', maxLength: 8 }], mode: 'shadow' },
            { id: 'polite', on: 'output', kind: 'rule', rules: [{ forbidden: ['darn'] }], onFail: 'reask', maxReasks: 2 },
          ],
        },
      }),
    );
    writeFileSync(join(dir, 'long.json'), JSON.stringify({ answer: 'far too long for it' }));
    store = openStore({ url: db, durability: 'fast' });
    await store.migrate();
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('list shows the gates and their settings', async () => {
    const r = await spine(dir, ['gates', 'list', '--config', 'spine.config.json', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { gates: Array<{ id: string; onFail: string; maxReasks: number; mode: string }> };
    assert.deepEqual(out.gates.map((g) => [g.id, g.onFail, g.mode]), [
      ['brief', 'block', 'shadow'],
      ['polite', 'reask', 'enforce'],
    ]);
  });

  it('test runs one gate on one input, exits 1 when it would not pass, and records nothing', async () => {
    const bad = await spine(dir, ['gates', 'test', 'brief', '--input', 'long.json', '--config', 'spine.config.json', '--db', db, '--json']);
    assert.equal(bad.code, 1, bad.stderr);
    const v = JSON.parse(bad.stdout) as { verdict: string; outcome: string; reasons: string[] };
    assert.deepEqual([v.verdict, v.outcome], ['fail', 'block']);
    assert.match(v.reasons[0]!, /\$\.answer: is longer than 8/);
    const ok = await spine(dir, ['gates', 'test', 'polite', '--input', 'long.json', '--config', 'spine.config.json', '--db', db]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /pass → PASS/);
    assert.deepEqual(await store.verdicts.list({ limit: 10 }), [], 'nothing recorded');
    const unknown = await spine(dir, ['gates', 'test', 'nope', '--input', 'long.json', '--config', 'spine.config.json', '--db', db]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown gate "nope"/);
  });

  it('runs show lists the gates a run crossed; verdicts queries them', async (t) => {
    const cfg = await loadConfig(join(dir, 'spine.config.json'));
    const worker = await startWorker(store, cfg.registry);
    t.after(() => worker.stop());
    const run = await finished(store, (await submit(store, cfg.registry, 'writer')).id);
    assert.equal(run.state, 'succeeded', 'the shadow gate did not block');
    const shown = await spine(dir, ['runs', 'show', run.id, '--db', db]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /gates\n/);
    assert.match(shown.stdout, /brief .*block \(shadow\)/);
    assert.match(shown.stdout, /polite .*pass/);
    const listed = await spine(dir, ['gates', 'verdicts', '--run', run.id, '--mode', 'shadow', '--db', db, '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual((JSON.parse(listed.stdout) as { verdicts: Array<{ gate: string }> }).verdicts.map((v) => v.gate), ['brief']);
    const bad = await spine(dir, ['gates', 'verdicts', '--outcome', 'maybe', '--db', db]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--outcome/);
  });

  it('breakers list, doctor warns about an open one, reset closes it (audited)', async () => {
    await store.breakers.update('tool:mail', outcomeChange('tool:mail', false, 'TOOL_FAILED', { ...DEFAULT_BREAKERS, failures: 1 }, Date.now(), { actor: 'wrk_x' }), Date.now());
    const listed = await spine(dir, ['breakers', 'list', '--db', db, '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual((JSON.parse(listed.stdout) as { breakers: Array<{ key: string; state: string }> }).breakers.map((b) => [b.key, b.state]), [['tool:mail', 'open']]);
    const doctor = await spine(dir, ['doctor', '--db', db]);
    assert.match(doctor.stdout, /breakers\s+WARN\s+tool:mail open \(probe in .*\), last TOOL_FAILED/);
    const reset = await spine(dir, ['breakers', 'reset', 'tool:mail', '--db', db]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.equal((await store.breakers.get('tool:mail'))!.state, 'closed');
    const events = await store.audit.list({ limit: 1000 });
    assert.ok(events.some((e) => e.kind === 'breaker.reset'), 'the reset is audited');
    const missing = await spine(dir, ['breakers', 'reset', 'tool:ghost', '--db', db]);
    assert.equal(missing.code, 3);
  });
});
