// The dashboard in a real browser (headless Chromium via playwright-core): sign in by
// keyboard; watch a run of the bundled example go from queued to succeeded live;
// approve a pending approval from the inbox and see the task go on; a viewer cannot
// approve; the page resumes after the gateway restarts with no gap and no duplicate.
// Screenshots of each view go to a temp dir (fixtures/browser.ts).
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { FieldIssue } from '../src/core/errors.ts';
import { newId } from '../src/core/ids.ts';
import type { Json } from '../src/core/types.ts';
import { hashToken, newTokenSecret } from '../src/gateway/auth.ts';
import { compilePolicy, policySchema } from '../src/policy/rules.ts';
import { loadConfig } from '../src/runtime/config.ts';
import { Runtime, type ServiceName } from '../src/runtime/runtime.ts';
import { sendFromCli } from '../src/runtime/cli-door.ts';
import type { Store } from '../src/store/store.ts';
import { launch, newPage, noBrowser, screenshot, signIn, waitForExpr } from './fixtures/browser.ts';
import { startTestGateway } from './fixtures/gateway-setup.ts';
import { finished, registry, tempStore, until } from './helpers.ts';

const skip = noBrowser();
type Decided = { status: number; body: { error: { code: string } } };
const EXAMPLE = new URL('../examples/briefing/spine.config.json5', import.meta.url).pathname;

async function token(store: Store, name: string, scopes: string[]): Promise<string> {
  const secret = newTokenSecret();
  await store.tokens.create({ id: newId('tok'), name, hash: hashToken(secret), scopes }, Date.now());
  return secret;
}

/** The bundled example on a temp store: a gateway runtime now; workers when the test says so. */
async function example(t: TestContext, port = 0) {
  const { store, cleanup } = await tempStore();
  const config = await loadConfig(EXAMPLE);
  const runtimes: Runtime[] = [];
  const start = async (services: readonly ServiceName[], p = port) => {
    const r = new Runtime({ config, store, services, gateway: { port: p } });
    await r.start();
    runtimes.push(r);
    return r;
  };
  t.after(async () => {
    for (const r of runtimes) await r.stop();
    await cleanup();
  });
  return { store, config, start };
}

describe('the dashboard in a browser', { skip: skip ?? false }, () => {
  it('signs in, shows a run of the example go from queued to succeeded live, every view fits a phone', async (t) => {
    const ex = await example(t);
    const gw = await ex.start(['gateway']);
    const url = gw.gateway!.url;
    const admin = await token(ex.store, 'ada', ['admin']);
    const browser = await launch(t);
    const { page, errors } = await newPage(browser);
    await signIn(page, url, admin);
    const cookie = (await page.context().cookies()).find((c) => c.name === 'spine_session')!;
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(await page.evaluate('document.cookie'), '', 'the session cookie is out of reach of scripts');

    // A run submitted with no worker running: the page shows it queued.
    const sub = await fetch(`${url}/v1/envelopes`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'commander', text: 'Should we?' }) });
    assert.equal(sub.status, 202);
    const runId = ((await sub.json()) as { run: { id: string } }).run.id;
    await page.goto(`${url}/#/runs/${runId}`);
    await page.waitForSelector(`[data-run-state="${runId}"]`);
    const root = (await ex.store.runs.get(runId))!.rootTaskId;
    assert.equal(await page.textContent(`[data-task-state="${root}"]`), 'queued');
    await screenshot(page, 'run-queued');
    // Same document from here on: a marker survives only if nothing reloads.
    await page.evaluate('window.marker = 42');

    await ex.start(['worker']);
    await page.waitForSelector(`[data-run-state="${runId}"]:text("succeeded")`);
    await page.waitForSelector(`[data-task-state="${root}"]:text("succeeded")`);
    assert.equal(await page.evaluate('window.marker'), 42, 'updated live, not reloaded');
    // The example's run: the commander, its three specialists and the arbiter that settles their conflict.
    await waitForExpr(page, `document.querySelectorAll('ul.tree li').length === 5`);
    await screenshot(page, 'run-tree');

    for (const view of ['runs', 'timeline', 'approvals', 'cost', 'health', 'briefs', 'gates', 'memory', 'why', 'audit']) {
      await page.goto(`${url}/#/${view}`);
      await page.waitForSelector(`#view[data-panel="${view}"]`);
      await screenshot(page, `view-${view}`);
    }
    // The layers' panels show this run: its brief with the settled conflict, the specialists' facts, and why it exists.
    await page.goto(`${url}/#/briefs`);
    const briefId = await page.getAttribute(`#view [data-brief]:has(a[href="#/runs/${runId}"])`, 'data-brief');
    assert.ok(briefId, 'the run has a brief row');
    await page.click(`a[href="#/briefs/${briefId}"]`);
    await page.waitForSelector('#view [data-conflict]');
    assert.match((await page.textContent('#view [data-conflict]'))!, /agent arbiter|rule /);
    await screenshot(page, 'brief');
    await page.goto(`${url}/#/memory?q=crash`);
    await page.waitForSelector('#view [data-fact]');
    assert.match((await page.textContent('#view [data-fact]'))!, /team\/briefing\/research/);
    await page.goto(`${url}/#/why/${runId}`);
    await page.waitForSelector(`#view [data-why="${runId}"] [data-step="envelope"]`);
    assert.match((await page.textContent('#view'))!, /audit chain: clean/);
    await screenshot(page, 'why-run');
    // Phone width: nothing wider than the screen.
    const phone = await newPage(browser, { phone: true });
    await signIn(phone.page, url, admin);
    for (const view of ['runs', 'approvals', 'health', 'briefs', 'memory', 'why']) {
      await phone.page.goto(`${url}/#/${view}`);
      await phone.page.waitForSelector(`#view[data-panel="${view}"]`);
      const overflow = await phone.page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
      assert.ok(overflow <= 0, `${view} is ${overflow}px wider than a phone screen`);
      await screenshot(phone.page, `phone-${view}`);
    }
    assert.deepEqual([...errors, ...phone.errors], []);
  });

  it('approves from the inbox with a reason and the task goes on; a viewer cannot approve', async (t) => {
    const issues: FieldIssue[] = [];
    const rule: Json = { id: 'sign-off', kind: 'approval', actions: ['payments.*'], tier: 'approve', approvers: 'finance', expiresIn: '1h' };
    const policy = compilePolicy(policySchema.parse({ rules: [rule] }), issues);
    assert.deepEqual(issues, []);
    const reg = registry(
      {
        payer: (input) => (input.task.turn === 1 ? { actions: [{ type: 'tool', tool: 'payments.send', input: { to: 'acme', amount: 120 } }] } : { output: { paid: input.results[0]!.ok } }),
      },
      { 'payments.send': () => ({ id: 'pay_1' }) },
      { policy },
    );
    const g = await startTestGateway(t, { reg, bindings: [{ id: 'api', match: { channel: 'api' }, agent: 'payer' }] });
    await g.startWorker(reg);
    const sub = await g.call('POST', '/v1/envelopes', { body: { text: 'pay acme' } });
    const runId = sub.body.run.id;
    await until('a pending approval', async () => (await g.store.approvals.list({ runId, state: 'pending', limit: 5 })).length === 1, 20_000);
    const [approval] = await g.store.approvals.list({ runId, state: 'pending', limit: 5 });

    const browser = await launch(t);
    // A viewer sees the inbox but no buttons, and the API refuses a decision made with its session.
    const viewer = await newPage(browser);
    await signIn(viewer.page, g.url, g.tokens.viewer);
    await viewer.page.goto(`${g.url}/#/approvals`);
    await waitForExpr(viewer.page, `!!document.querySelector('[data-approval="${approval!.id}"]')`);
    assert.equal(await viewer.page.locator(`[data-approval="${approval!.id}"] button`).count(), 0);
    const decide = (csrf: boolean) => `(async () => {
      const csrf = document.querySelector('meta[name="csrf-token"]').content;
      const r = await fetch('/v1/approvals/${approval!.id}/decision', { method: 'POST', headers: { 'content-type': 'application/json'${csrf ? ", 'x-csrf-token': csrf" : ''} }, body: '{"approve":true}' });
      return { status: r.status, body: await r.json() };
    })()`;
    const refused = await viewer.page.evaluate<Decided>(decide(true));
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'FORBIDDEN');
    // Without the CSRF token, even an admin's session cannot change anything.
    const admin = await newPage(browser);
    await signIn(admin.page, g.url, g.tokens.admin);
    const noCsrf = await admin.page.evaluate<Decided>(decide(false));
    assert.equal(noCsrf.status, 403);
    assert.equal(noCsrf.body.error.code, 'FORBIDDEN');
    assert.equal((await g.store.approvals.get(approval!.id))!.state, 'pending');

    // An operator approves by keyboard: the reason field, then the Approve button.
    const op = await newPage(browser);
    await signIn(op.page, g.url, g.tokens.operator);
    await op.page.goto(`${g.url}/#/approvals`);
    await op.page.waitForSelector(`#reason-${approval!.id}`);
    await screenshot(op.page, 'approvals-inbox');
    await op.page.focus(`#reason-${approval!.id}`);
    await op.page.keyboard.type('invoice checked');
    await op.page.keyboard.press('Tab');
    await op.page.keyboard.press('Enter');
    const run = await finished(g.store, runId, 20_000);
    assert.equal(run.state, 'succeeded');
    assert.deepEqual(run.output, { paid: true });
    const decided = (await g.store.approvals.get(approval!.id))!;
    assert.equal(decided.state, 'approved');
    assert.equal(decided.decidedBy, 'operator');
    assert.equal(decided.decisionReason, 'invoice checked');
    await op.page.waitForSelector('text=Nothing waits for a decision.');
    await op.page.waitForSelector('td:text("invoice checked")');
    assert.deepEqual([...viewer.errors, ...admin.errors, ...op.errors], []);
  });

  it('recovers after the gateway restarts: resumes from its cursor with no gap and no duplicate', async (t) => {
    const ex = await example(t);
    let gw = await ex.start(['gateway', 'worker']);
    const url = gw.gateway!.url;
    const port = gw.gateway!.port;
    const admin = await token(ex.store, 'ada', ['admin']);
    const browser = await launch(t);
    const { page, errors } = await newPage(browser);
    await signIn(page, url, admin);
    await page.goto(`${url}/#/audit`);
    const send = async () => {
      const { run } = await sendFromCli(gw.intake, { agent: 'commander', text: 'again' });
      return run.id;
    };
    const first = await send();
    await finished(ex.store, first);
    await waitForExpr(page, `Number(document.body.dataset.cursor) >= ${await ex.store.audit.latestSeq()}`);

    await gw.stop();
    await page.waitForSelector('#conn.down');
    // Work goes on while the page is disconnected: a worker alone runs a run.
    const worker = await ex.start(['worker']);
    gw = worker;
    const during = await send();
    await finished(ex.store, during);
    await worker.stop();
    gw = await ex.start(['gateway'], port);
    const latest = await ex.store.audit.latestSeq();
    await waitForExpr(page, `Number(document.body.dataset.cursor) >= ${latest}`);
    await page.waitForSelector('#conn.live');
    const applied = await page.evaluate<number[]>('window.spineApplied');
    const start = applied[0]!;
    assert.deepEqual(applied, Array.from({ length: latest - start + 1 }, (_, i) => start + i), 'every seq once, in order, across the restart');
    // The tail renders after the cursor moves: wait for the rows (the test's timeout bounds it).
    await waitForExpr(page, `[...document.querySelectorAll('td')].filter((td) => (td.textContent ?? '').includes('run.succeeded')).length >= 2`);
    await screenshot(page, 'after-restart');
    assert.deepEqual(errors, []);
  });
});
