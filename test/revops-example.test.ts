// The RevOps example (examples/revops, issue 16) end to end, offline, as
// `npm run example:revops` runs it: the launcher starts Spine, posts a signed
// `renewal.due` for ACME, and the test then does what the README tells a user to do —
// the CLI to read the brief, approve the email, `spine why` it — and plays Slack for a
// second renewal. The customer-hours window is configured from the test (an allow
// window around now, in UTC), so the test passes at any hour.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import JSON5 from 'json5';
import { postSlack } from '../examples/revops/post.ts';
import { fakeOpenAI } from './fixtures/llm-servers.ts';
import { openStore } from '../src/runtime/open-store.ts';
import type { Store } from '../src/store/store.ts';
import { until } from './helpers.ts';

const EXAMPLE = resolve('examples/revops');
const LAUNCHER = join(EXAMPLE, 'start.ts');
const MAIN = resolve('src/cli/main.ts');
const DEPARTMENTS = ['sales', 'support', 'finance', 'success'] as const;

/** `HH:MM` in UTC, `hours` from now. */
const utc = (hours: number) => new Date(Date.now() + hours * 3_600_000).toISOString().slice(11, 16);

describe('examples/revops: npm run example:revops', () => {
  let dir: string;
  let config: string;
  let launcher: ChildProcess;
  let out = '';
  let exited: Promise<number | null>;
  let store: Store;
  let gateway: string;
  let firstRun: string;
  let firstApproval: string;

  /** Resolves with the first match of `pattern` in the launcher's output. */
  const saw = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((done, fail) => {
      const check = () => pattern.exec(out);
      const m = check();
      if (m) return done(m);
      const onData = () => {
        const hit = check();
        if (hit) {
          launcher.stdout!.off('data', onData);
          done(hit);
        }
      };
      launcher.stdout!.on('data', onData);
      void exited.then((code) => fail(new Error(`the launcher exited (${code}) before printing ${pattern}:\n${out}`)));
    });

  /** The CLI against the example's config and store, as a user types it. */
  const spine = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
      execFile(process.execPath, [MAIN, ...args, '--config', config], { cwd: dir, encoding: 'utf8' }, (err, stdout, stderr) =>
        done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  const json = async <T>(...args: string[]): Promise<T> => {
    const r = await spine(...args, '--json');
    assert.equal(r.code, 0, `spine ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spine-revops-'));
    cpSync(EXAMPLE, join(dir, 'revops'), { recursive: true });
    config = join(dir, 'revops', 'spine.config.json5');
    const text = readFileSync(config, 'utf8');
    const window = /timezone: 'America\/New_York', allow: \{[^}]*\}/;
    assert.match(text, window, 'the example config still has the customer-hours window this test replaces');
    // The commander's heartbeat fires every 30 minutes in the example; every 2 s here, so the test sees it look and skip.
    assert.match(text, /every: '30m'/, 'the example config still has the heartbeat this test speeds up');
    writeFileSync(config, text.replace(window, `timezone: 'UTC', allow: { from: '${utc(-1)}', to: '${utc(3)}' }`).replace(/every: '30m'/, "every: '2s'"));

    const env = { ...process.env };
    for (const k of Object.keys(env)) if (/^(SPINE_|OPENAI_|ANTHROPIC_|REVOPS_)/.test(k) || k === 'NODE_TEST_CONTEXT') delete env[k];
    launcher = spawn(process.execPath, [LAUNCHER, '--config', config, '--port', '0'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    launcher.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    launcher.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    exited = new Promise((done) => launcher.once('exit', (code) => done(code)));
    gateway = (await saw(/gateway (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
    store = openStore({ url: `sqlite:${join(dir, '.spine', 'spine.db')}` });
  });

  after(async () => {
    await store?.close();
    if (launcher && launcher.exitCode === null) {
      launcher.kill('SIGTERM');
      assert.equal(await exited, 0, out);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('a signed renewal.due reaches the commander; the departments answer in parallel and the brief settles the churn-risk conflict by the chain', async () => {
    assert.match((await saw(/CRM → POST .*webhook\/crm .*: (\d+)/))[1]!, /^202$/);
    const waits = await saw(/(run_\w+)\s+success waits for approval by revops of tool:email\.send \((apr_\w+)/);
    [firstRun, firstApproval] = [waits[1]!, waits[2]!];
    await saw(/The customer email waits for a person/);

    const { briefs } = await json<{ briefs: Array<{ id: string }> }>('briefs', 'list', '--run', firstRun);
    assert.equal(briefs.length >= 1, true);
    const { brief } = await json<{ brief: { parts: Array<{ key: string; value: unknown }>; conflicts: Array<{ key: string; candidates: Array<{ value: unknown }>; decision: { value: unknown; strategy: string } | null; steps: Array<{ strategy: string }> }> } }>(
      'briefs', 'show', briefs.at(-1)!.id,
    );
    const part = (key: string) => brief.parts.find((p) => p.key === key)?.value;
    assert.equal(part('expansion.potential'), 'high');
    assert.deepEqual(part('invoices.outstanding'), { count: 2, usd: 18400 }, 'from finance, the Python agent');
    assert.equal(brief.conflicts.length, 1, 'one real conflict');
    const [conflict] = brief.conflicts;
    assert.equal(conflict!.key, 'churn.risk');
    assert.deepEqual(conflict!.candidates.map((c) => c.value).sort(), ['high', 'low']);
    assert.deepEqual(conflict!.steps.map((s) => s.strategy), ['vote', 'confidence'], 'the vote ties, confidence decides');
    assert.deepEqual({ value: conflict!.decision?.value, strategy: conflict!.decision?.strategy }, { value: 'high', strategy: 'confidence' });

    const input = (await store.runs.get(firstRun))?.input as { envelope: { channel: string; account: string; data: { event: string } } };
    assert.deepEqual([input.envelope.channel, input.envelope.account, input.envelope.data.event], ['webhook', 'crm', 'renewal.due']);
  });

  it('each department wrote what it learned into its team scope, and the commander the account summary', async () => {
    for (const scope of [...DEPARTMENTS.map((d) => `team/${d}`), 'team/accounts']) {
      const { fact } = await json<{ fact: { version: number; writtenBy: { agent: string; run: string } } | null }>('memory', 'get', scope, 'acme');
      assert.ok(fact, `a fact in ${scope}`);
      assert.equal(fact.writtenBy.run, firstRun, scope);
      assert.equal(fact.writtenBy.agent, scope === 'team/accounts' ? 'commander' : scope.slice('team/'.length), scope);
    }
  });

  it('policy: only success may send email, and the send waits for exactly one approval', async () => {
    const explain = await spine('policy', 'explain', '--agent', 'sales', '--action', 'tool:email.send');
    assert.match(explain.stdout, /deny/i);
    const pending = await store.approvals.list({ runId: firstRun, state: 'pending', limit: 10 });
    assert.deepEqual(pending.map((a) => a.id), [firstApproval]);
    assert.equal(readdirSafe(join(dir, '.spine', 'emails')).length, 0, 'nothing sent before the approval');
    const gate = await spine('gates', 'test', 'customer-email', '--input', join(dir, 'revops', 'bad-email.json'));
    assert.equal(gate.code, 1, 'the gate refuses the bad email');
    assert.match(gate.stdout + gate.stderr, /renewalDate/);
    assert.match(gate.stdout + gate.stderr, /guarantee/);
  });

  it('approved, the email passes the gate and is sent once; `spine why` explains it', async () => {
    const approved = await spine('approvals', 'approve', firstApproval, '--reason', 'ok to send');
    assert.equal(approved.code, 0, approved.stderr);
    const why = (await saw(/npx spine why (\S+)/))[1]!;
    await until('the renewal run succeeds', async () => (await store.runs.get(firstRun))?.state === 'succeeded', 60_000);

    const shown = await json<{ effects: Array<{ key: string; tool: string; state: string }>; usage: { spend: { settledUsd: number; reservedUsd: number } } }>('runs', 'show', firstRun);
    // Every turn's spend was settled against the per-renewal ceiling ($1), none left reserved.
    assert.ok(shown.usage.spend.settledUsd > 0.1 && shown.usage.spend.settledUsd < 1, JSON.stringify(shown.usage.spend));
    assert.equal(shown.usage.spend.reservedUsd, 0);
    const emails = shown.effects.filter((e) => e.tool === 'email.send');
    assert.equal(emails.length, 1);
    assert.equal(emails[0]!.state, 'completed');
    assert.equal(emails[0]!.key, why);
    const files = readdirSafe(join(dir, '.spine', 'emails'));
    assert.equal(files.length, 1);
    const body = readFileSync(join(dir, '.spine', 'emails', files[0]!), 'utf8');
    assert.match(body, /^To: dana\.reyes@acme\.example/);
    assert.doesNotMatch(body, /guarantee|discount|free of charge/i);
    assert.equal((await store.approvals.list({ runId: firstRun, limit: 10 })).length, 1, 'exactly one approval in the run');

    const run = await store.runs.get(firstRun);
    const output = run?.output as { churnRisk: string; email: { sent: boolean }; resolved: Array<{ key: string; candidates: unknown[]; decidedBy: string }> };
    assert.equal(output.churnRisk, 'high');
    assert.equal(output.email.sent, true);
    // Sales says low, support high (in either order): the more confident claim wins.
    assert.deepEqual(
      output.resolved.map((r) => ({ ...r, candidates: [...r.candidates].sort() })),
      [{ key: 'churn.risk', candidates: ['high', 'low'], decidedBy: 'confidence', value: 'high' }],
    );

    const explained = await spine('why', why);
    assert.equal(explained.code, 0, explained.stderr);
    for (const step of ['customer-email-ok', 'customer-email', 'crm-renewals', 'success', 'commander']) assert.match(explained.stdout, new RegExp(step), `why names ${step}`);
  });

  it('a Slack message is classified to the commander, and the second renewal recalls what the first learned', async () => {
    const res = await postSlack(gateway, 'The ACME renewal is coming up, can you prep it?', { REVOPS_SLACK_SIGNING_SECRET: 'revops-demo-slack-signing-secret' });
    assert.equal(res.status, 200, await res.text());
    const second = await found(
      'the second renewal waits for its approval',
      async () => (await store.approvals.list({ state: 'pending', limit: 10 })).find((a) => a.runId !== firstRun) ?? null,
      60_000,
    );
    const routed = (await store.audit.list({ runId: second.runId, limit: 1000 })).find((e) => e.kind === 'route.decided');
    assert.deepEqual((routed?.data as { decision: { binding: string; router: string; fallback: boolean } }).decision, {
      ...(routed?.data as { decision: object }).decision,
      binding: 'revops-slack',
      router: 'classifier',
      fallback: false,
    });

    // Every department was handed its own fact from the first renewal, and cites it.
    const tasks = await store.tasks.list({ runId: second.runId, limit: 100 });
    for (const d of DEPARTMENTS) {
      const research = tasks.find((t) => t.agent === d && (t.input as { mode?: string }).mode !== 'email');
      const earlier = (research?.output as { earlier?: Array<{ run: string }> } | undefined)?.earlier ?? [];
      assert.ok(earlier.some((e) => e.run === firstRun), `${d} recalls the first renewal's fact: ${JSON.stringify(research?.output)}`);
    }
    // The commander recalled across the team scopes: its new account summary lists what the first renewal wrote.
    const { fact } = await json<{ fact: { version: number; value: { previously: Array<{ scope: string; run: string }> } } }>('memory', 'get', 'team/accounts', 'acme');
    assert.equal(fact.version, 2);
    const recalled = new Set(fact.value.previously.filter((p) => p.run === firstRun).map((p) => p.scope));
    assert.deepEqual([...recalled].sort(), ['team/accounts', 'team/finance', 'team/sales', 'team/success', 'team/support']);
    assert.equal((await store.approvals.list({ runId: second.runId, limit: 10 })).length, 1, 'one approval for this renewal too');
  });

  it('a Slack message the classifier cannot place goes to the deterministic fallback', async () => {
    const before = await store.audit.latestSeq();
    const res = await postSlack(gateway, 'hello there', { REVOPS_SLACK_SIGNING_SECRET: 'revops-demo-slack-signing-secret' });
    assert.equal(res.status, 200);
    const decided = await found('the fallback decision', async () => {
      const events = await store.audit.list({ afterSeq: before, limit: 1000 });
      return events.find((e) => e.kind === 'route.decided' && (e.data as { decision?: { router?: string } }).decision?.router === 'classifier') ?? null;
    }, 60_000);
    const decision = (decided.data as { decision: { fallback: boolean; why: string } }).decision;
    assert.equal(decision.fallback, true);
    assert.match(decision.why, /answered \{"agent":"none"\}.*fallback commander/);
    await until('the commander asks which account', async () => (await store.runs.get(decided.runId!))?.state === 'succeeded', 60_000);
    assert.match(JSON.stringify((await store.runs.get(decided.runId!))?.output), /Which account\?/);
  });

  it('the commander answers a heartbeat from team/accounts: the account that needs a person', async () => {
    const sent = await spine('send', 'commander', 'heartbeat: accounts');
    assert.equal(sent.code, 0, sent.stderr);
    const runId = sent.stdout.trim();
    await until('the heartbeat run succeeds', async () => (await store.runs.get(runId))?.state === 'succeeded', 60_000);
    assert.deepEqual((await store.runs.get(runId))?.output, { text: 'Accounts that need a person: ACME.', attention: ['ACME'] });
  });

  it('the commander’s heartbeat looks when an account summary changed, and takes no turn while nothing did', async () => {
    const fromHeartbeat = (e: { kind: string; data?: unknown }) => e.kind === 'run.created' && (e.data as { origin?: string } | undefined)?.origin === 'heartbeat:accounts-watch';
    // The renewals above wrote team/accounts: a fire after that took a turn, which named the account.
    const looks = await found('a heartbeat that looked', async () => {
      const runs = (await store.audit.list({ limit: 100_000 })).filter(fromHeartbeat);
      return runs.length > 0 ? runs : null;
    }, 60_000);
    const look = await found('the look finishes', async () => {
      const run = await store.runs.get(looks[0]!.runId!);
      return run && run.state !== 'running' ? run : null;
    }, 60_000);
    assert.equal(look.state, 'succeeded', JSON.stringify(look.error));
    assert.match(JSON.stringify(look.output), /ACME/);

    // Nothing changes from here: two idle fires in a row are recorded as skips, and no run comes between them.
    const from = await store.audit.latestSeq();
    const skips = await found('two idle heartbeat fires', async () => {
      const idle = (await store.audit.list({ afterSeq: from, limit: 1000 })).filter((e) => e.kind === 'heartbeat.skipped' && (e.data as { reason?: string }).reason === 'idle');
      return idle.length >= 2 ? idle : null;
    }, 60_000);
    const between = (await store.audit.list({ afterSeq: skips[0]!.seq, limit: 1000 })).filter((e) => e.seq < skips[1]!.seq);
    assert.deepEqual(between.filter(fromHeartbeat), [], 'an idle fire takes no turn');
    const listed = await spine('schedules');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /accounts-watch/);
  });
});

/** Waits until `probe` finds something, and returns it. */
async function found<T>(what: string, probe: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  let hit: T | null = null;
  await until(what, async () => (hit = await probe()) !== null, timeoutMs);
  return hit!;
}

describe('examples/revops: the real-model config', () => {
  it('is the offline config with the classifier as an LLM agent (and its contract), nothing else', () => {
    type Config = { agents: Record<string, { kind: string; output?: string }>; contracts?: Record<string, unknown> };
    const read = (f: string) => JSON5.parse<Config>(readFileSync(join(EXAMPLE, f), 'utf8'));
    const offline = read('spine.config.json5');
    const llm = read('spine.llm.config.json5');
    assert.equal(llm.agents.classifier?.kind, 'llm');
    assert.ok(llm.contracts?.[llm.agents.classifier.output ?? '']);
    const rest = (c: typeof llm) => ({ ...c, contracts: undefined, agents: { ...c.agents, classifier: undefined } });
    assert.deepEqual(rest(llm), rest(offline));
  });

  it('the classifier routes on the model it is given (a loopback OpenAI-compatible server)', async () => {
    const server = await fakeOpenAI();
    const cwd = mkdtempSync(join(tmpdir(), 'spine-revops-llm-'));
    try {
      server.otherwise = { reply: { text: '{"agent": "support"}', usage: { input: 120, output: 6 } } };
      const env: NodeJS.ProcessEnv = { ...process.env, OPENAI_BASE_URL: server.url, OPENAI_MODEL: 'local-llama' };
      for (const k of ['SPINE_DB', 'SPINE_CONFIG', 'OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'NODE_TEST_CONTEXT']) delete env[k];
      const r = await new Promise<{ code: number; out: string }>((done) =>
        execFile(process.execPath, [MAIN, 'up', '--no-gateway', '--config', join(EXAMPLE, 'spine.llm.config.json5'), '--send', 'classifier', '--text', "How bad are ACME's SSO tickets?", '--exit'], { cwd, env, encoding: 'utf8' }, (err, stdout, stderr) =>
          done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
        ),
      );
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /"agent": "support"/);
      const [asked] = server.calls('local-llama');
      assert.match(JSON.stringify(asked?.body), /#revops Slack channel/);
    } finally {
      await server.close();
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

function readdirSafe(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
