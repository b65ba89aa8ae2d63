// The first hour (issue 17): what a newcomer and a process supervisor meet first.
// Real processes, real signals: Ctrl-C on `up --send` with its run still open, the
// launcher under an older Node living and dying with its child, and the small CLI
// answers (`spine version`, a negative `--limit`).
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MAIN, PROJECT_MODULE, spine, writeProject } from './fixtures/policy-project.ts';
import { until } from './helpers.ts';
import { openStore } from '../src/runtime/open-store.ts';

const BIN = fileURLToPath(new URL('../bin/spine.js', import.meta.url));
const SIGN_OFF = { rules: [{ id: 'sign-off', kind: 'approval', actions: ['payments.*'], tier: 'approve', approvers: 'finance', expiresIn: '1h' }] };

interface Running {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  /** Resolves once stdout matches. */
  saw: (pattern: RegExp) => Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(cwd: string, node: string, entry: string, args: string[]): Running {
  const env = { ...process.env };
  for (const k of ['SPINE_DB', 'SPINE_CONFIG', 'SPINE_FAULTS', 'NODE_TEST_CONTEXT']) delete env[k];
  const child = spawn(node, [entry, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    for (const w of waiters.filter((w) => w.pattern.test(out))) w.resolve();
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const saw = (pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      if (pattern.test(out)) return resolve();
      waiters.push({ pattern, resolve });
      void exited.then(({ code, signal }) => reject(new Error(`exited (${code ?? signal}) before printing ${pattern}:\n${out}\n${err}`)));
    });
  return { child, out: () => out, err: () => err, saw, exited };
}

/** The pids whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('the first hour', () => {
  let dir: string;
  let config: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'spine-first-hour-'));
    config = writeProject(dir, { policy: SIGN_OFF });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const db = (name: string) => `sqlite:${join(dir, `${name}.db`)}`;

  it('Ctrl-C on `up --send` while its run waits for an approval drains cleanly: exit 0, no store error', async () => {
    // The run parks on an approval, so it is still open (and being waited on) when SIGINT comes.
    const up = start(dir, process.execPath, MAIN, ['up', '--config', config, '--db', db('sigint'), '--port', '0', '--send', 'payer', '--input', '{"to":"acme","amount":5}']);
    await up.saw(/waits for approval/);
    up.child.kill('SIGINT');
    const { code } = await up.exited;
    assert.equal(code, 0, up.err());
    assert.doesNotMatch(up.err(), /finalized|unexpected error|database is (closed|not open)/i);
    assert.match(up.out(), /draining/);
  });

  it('`spine version` and `--version` print the version; `--limit -5` names the option', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const args of [['version'], ['--version']]) {
      const r = await spine(dir, args);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), pkg.version);
    }
    const r = await spine(dir, ['runs', 'list', '--limit', '-5', '--db', db('limit')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--limit: must be an integer ≥ 1, got "-5"/);
    assert.doesNotMatch(r.stderr, /ambiguous/);
  });

  it('under Node 24 the bin entry runs Spine in its own process (no second process)', async () => {
    const w = start(dir, process.execPath, BIN, ['worker', '--config', config, '--db', db('one')]);
    await w.saw(/spine worker: /);
    assert.deepEqual(childrenOf(w.child.pid!), [], 'no child process');
    w.child.kill('SIGINT');
    assert.equal((await w.exited).code, 0, w.err());
  });

  it('`send --wait` right after the only worker was SIGKILLed says at once that no worker is running', async () => {
    const w = start(dir, process.execPath, MAIN, ['worker', '--config', config, '--db', db('dead-worker')]);
    await w.saw(/spine worker: /);
    w.child.kill('SIGKILL');
    await w.exited;
    // Its heartbeat is fresh; its process is gone. The warning comes from the first check, not after a minute.
    const r = await spine(dir, ['send', 'payer', '--input', '{"to":"acme","amount":1}', '--wait', '--timeout', '1500', '--config', config, '--db', db('dead-worker')]);
    assert.equal(r.code, 1, 'still running when --timeout passed');
    assert.match(r.stderr, /no worker is running against .*dead-worker\.db.*start one with `spine up`/);
    assert.match(r.stdout, /still running after 1500 ms/);
  });

  it('approvals show, runs follow, a denial reason, and a cancelled run’s approval that can no longer be decided', async (t) => {
    const url = db('approvals');
    const w = start(dir, process.execPath, MAIN, ['worker', '--config', config, '--db', url]);
    t.after(async () => {
      w.child.kill('SIGTERM');
      await w.exited;
    });
    await w.saw(/spine worker: /);
    const store = openStore({ url });
    t.after(() => store.close());
    const pendingOf = async (runId: string) => {
      await until('a pending approval', async () => (await store.approvals.list({ runId, state: 'pending', limit: 1 })).length > 0, 30_000);
      return (await store.approvals.list({ runId, state: 'pending', limit: 1 }))[0]!;
    };

    const sent = await spine(dir, ['send', 'payer', '--input', '{"to":"acme","amount":1234}', '--config', config, '--db', url]);
    assert.equal(sent.code, 0, sent.stderr);
    const runId = sent.stdout.trim();
    const follow = start(dir, process.execPath, MAIN, ['runs', 'follow', runId, '--config', config, '--db', url]);
    const a = await pendingOf(runId);

    const shown = await spine(dir, ['approvals', 'show', a.id, '--config', config, '--db', url]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /action +tool:payments\.send/);
    assert.match(shown.stdout, /"amount": 1234/, 'the whole input is shown');
    assert.match(shown.stdout, /rule +sign-off/);
    assert.match(shown.stdout, /approvers +finance/);
    assert.match(shown.stdout, /history\n.*approval\.requested/);

    // The follower shows the wait, with the run and a time on the line.
    await follow.saw(/waits for approval by finance/);
    assert.match(follow.out(), new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} ${runId}  started → payer$`, 'm'));
    const denied = await spine(dir, ['approvals', 'deny', a.id, '--reason', 'wrong vendor', '--config', config, '--db', url]);
    assert.equal(denied.code, 0, denied.stderr);
    const followed = await follow.exited;
    assert.equal(followed.code, 0, `the agent handled the refusal and the run succeeded: ${follow.err()}`);
    assert.match(follow.out(), /denied by env-operator \(wrong vendor\)/);
    assert.match(follow.out(), new RegExp(`run ${runId} succeeded`));
    // The reason reached the agent, in the denied result.
    const run = (await store.runs.get(runId))!;
    assert.match(JSON.stringify(run.output), /denied this action: wrong vendor/);
    const history = await spine(dir, ['approvals', 'show', a.id, '--config', config, '--db', url]);
    assert.match(history.stdout, /approval\.denied by env-operator: wrong vendor/);

    // --raise-to is for an escalation's per-run ceiling, with a positive amount: anything else is bad input.
    const tier = await spine(dir, ['approvals', 'approve', a.id, '--raise-to', '5', '--config', config, '--db', url]);
    assert.equal(tier.code, 2, tier.stderr);
    assert.match(tier.stderr, /--raise-to: approval .* is an approval tier, not an escalation/);
    const negative = await spine(dir, ['approvals', 'approve', a.id, '--raise-to', '-1', '--config', config, '--db', url]);
    assert.equal(negative.code, 2, negative.stderr);
    assert.match(negative.stderr, /--raise-to: must be an amount in USD greater than 0, got "-1"/);

    // Cancelled while waiting: the approval is closed, and approving it is refused.
    const second = (await spine(dir, ['send', 'payer', '--input', '{"to":"acme","amount":5}', '--config', config, '--db', url])).stdout.trim();
    const b = await pendingOf(second);
    assert.equal((await spine(dir, ['runs', 'cancel', second, '--config', config, '--db', url])).code, 0);
    const late = await spine(dir, ['approvals', 'approve', b.id, '--config', config, '--db', url]);
    assert.equal(late.code, 3, late.stdout);
    assert.match(late.stderr, new RegExp(`approval ${b.id} is already cancelled`));
    assert.doesNotMatch(late.stdout, /continues/);
    assert.equal((await store.approvals.get(b.id))!.state, 'cancelled');
  });

  it('work with no text is refused (exit 2, nothing stored) unless the agent’s input contract allows it', async () => {
    const url = db('empty');
    for (const args of [['send', 'payer'], ['send', 'payer', '  '], ['up', '--port', '0', '--send', 'payer', '--exit']]) {
      const r = await spine(dir, [...args, '--config', config, '--db', url]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /(\[text\]|--text): missing: what should payer work on\?/);
    }
    assert.ok(!existsSync(join(dir, 'empty.db')), 'refused before the store was even opened');
    // An agent whose input contract accepts empty text gets it: the contract decides.
    const lenient = writeProject(dir, {
      file: 'lenient.config.json5',
      extra: {
        contracts: { 'note@1': { schema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] } } },
        agents: { payer: { kind: 'function', module: PROJECT_MODULE, export: 'payer', input: 'note@1', grants: { tools: ['payments.*'] } } },
      },
    });
    const ok = await spine(dir, ['send', 'payer', '--config', lenient, '--db', url]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^run_/);
  });

  it('SIGINT to `npm run spine`’s pid (what npm forwards) reaches Spine: it drains and nothing is left running', async () => {
    const repo = fileURLToPath(new URL('..', import.meta.url));
    const npm = start(repo, 'npm', 'run', ['--silent', 'spine', '--', 'worker', '--config', config, '--db', db('npm')]);
    await npm.saw(/spine worker: /);
    // npm runs the script through `sh -c`; the script execs node, so Spine is npm's child.
    const [spinePid] = childrenOf(npm.child.pid!);
    assert.ok(spinePid, 'npm runs Spine');
    npm.child.kill('SIGINT');
    await npm.exited;
    await until('Spine is gone', () => !alive(spinePid), 30_000);
    assert.match(npm.out(), /draining/, 'Spine got the signal and drained');
  });

  const oldNode = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => existsSync(p) && Number(execFileSync(p, ['-p', 'process.versions.node.split(".")[0]']).toString()) < 24);
  const skip = oldNode ? false : 'no Node older than 24 on this machine to try';

  it('under an older Node, SIGINT to the launcher (kill -INT, not a terminal) stops the Node 24 child', { skip }, async () => {
    const w = start(dir, oldNode!, BIN, ['worker', '--config', config, '--db', db('old-int')]);
    await w.saw(/spine worker: /);
    const [child] = childrenOf(w.child.pid!);
    assert.ok(child, 'the launcher runs Spine in a child');
    process.kill(w.child.pid!, 'SIGINT');
    const { code } = await w.exited;
    assert.equal(code, 0, `the child drained and its exit code came through: ${w.err()}`);
    await until('the child is gone', () => !alive(child), 30_000);
    assert.match(w.out(), /draining/);
  });

  it('under an older Node, SIGKILL of the launcher (a supervisor’s last resort) takes the child down too', { skip }, async () => {
    const w = start(dir, oldNode!, BIN, ['worker', '--config', config, '--db', db('old-kill')]);
    await w.saw(/spine worker: /);
    const [child] = childrenOf(w.child.pid!);
    assert.ok(child, 'the launcher runs Spine in a child');
    w.child.kill('SIGKILL');
    await w.exited;
    // The child sees its IPC channel close and stops: no orphan left polling the store.
    await until('the orphaned child is gone', () => !alive(child), 30_000);
  });
});
