// `spine route explain`, `spine agents list --bindings`, `spine agents add` and
// `spine sessions list|show|reset|fork`, run as the real CLI in child processes
// against a copy of test/fixtures/routing-project (sessions made through Intake here).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/runtime/config.ts';
import { systemClock } from '../src/core/clock.ts';
import { Worker } from '../src/engine/worker.ts';
import type { Envelope } from '../src/core/envelope.ts';
import { Intake } from '../src/intake/intake.ts';
import { openStore } from '../src/runtime/open-store.ts';
import type { SessionInfo } from '../src/store/store.ts';
import { finished } from './helpers.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/routing-project', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function spine(cwd: string, args: string[]): Promise<Result> {
  const env = { ...process.env };
  delete env.SPINE_DB;
  delete env.SPINE_CONFIG;
  delete env.SPINE_FAULTS;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A fresh copy of the fixture project. */
function project(): string {
  const dir = mkdtempSync(join(tmpdir(), 'spine-routing-cli-'));
  cpSync(FIXTURE, dir, { recursive: true });
  return dir;
}

const IN_TIER_ORDER = ['vip-room', 'support-threads', 'admins', 'ops-room', 'acme', 'telegram', 'triage'];

describe('spine route explain', () => {
  let dir: string;
  before(() => (dir = project()));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints every binding with its verdict and the winner; exit 0 when routed', async () => {
    const [peer, roles, thread, router] = await Promise.all([
      spine(dir, ['route', 'explain', '--channel', 'slack', '--peer', 'C-VIP', '--account', 'T-ACME']),
      spine(dir, ['route', 'explain', '--channel', 'slack', '--peer', 'G-OPS', '--sender', 'U1', '--role', 'viewer', '--role', 'admin']),
      spine(dir, ['route', 'explain', '--channel', 'slack', '--peer', 'C-THREAD', '--peer-kind', 'channel', '--parent-peer', 'C-SUPPORT', '--account', 'T-ACME']),
      spine(dir, ['route', 'explain', '--channel', 'desk', '--sender', 'U7']),
    ]);
    for (const r of [peer, roles, thread, router]) assert.equal(r.code, 0, r.stderr);

    const rows = peer.stdout.split('\n').filter((l) => /^\S+\s+(peer|thread|group\+roles|group|account|channel|default)\s+(yes|no)\b/.test(l));
    assert.deepEqual(
      rows.map((l) => l.split(/\s+/).slice(0, 3).join(' ')),
      [
        'telegram channel no',
        'ops-room group no',
        'vip-room peer yes',
        'admins group+roles no',
        'support-threads thread no',
        'acme account yes',
        'triage channel no',
      ],
    );
    assert.match(peer.stdout, /telegram\s+channel\s+no\s+channel slack ≠ telegram/);
    assert.match(peer.stdout, /→ concierge via vip-room \(tier peer: channel=slack, peer=C-VIP\)$/m);

    assert.match(roles.stdout, /→ ops via admins \(tier group\+roles: group=G-OPS, roles=admin\)$/m);
    assert.match(roles.stdout, /ops-room\s+group\s+yes/);
    assert.match(thread.stdout, /→ support via support-threads \(tier thread: channel=slack, parentPeer=C-SUPPORT\)$/m);
    assert.match(router.stdout, /→ classifier via triage \(tier channel: channel=desk\)$/m);
  });

  it('exit 1 and the reason when unroutable; --json gives the decision; bad input is exit 2; nothing is stored', async () => {
    const [text, json, routedJson, badKind] = await Promise.all([
      spine(dir, ['route', 'explain', '--channel', 'discord', '--sender', 'U2']),
      spine(dir, ['route', 'explain', '--channel', 'discord', '--peer', 'G-1', '--json']),
      spine(dir, ['route', 'explain', '--channel', 'telegram', '--sender', '4242', '--json']),
      spine(dir, ['route', 'explain', '--peer-kind', 'room']),
    ]);
    assert.equal(text.code, 1, text.stderr);
    assert.match(text.stdout, /→ unroutable: no binding matches channel=discord account=default peer=dm:U2 and there is no default binding/);
    assert.match(text.stdout, /telegram: channel discord ≠ telegram/);
    assert.match(text.stdout, /admins: group \(none\) ≠ G-OPS; sender has none of the roles admin/);

    assert.equal(json.code, 1, json.stderr);
    const d = JSON.parse(json.stdout) as { ok: boolean; code: string; why: string; candidates: Array<{ binding: string; tier: string; matched: boolean }> };
    assert.equal(d.ok, false);
    assert.equal(d.code, 'UNROUTABLE');
    assert.deepEqual(
      d.candidates.map((c) => c.binding),
      ['telegram', 'ops-room', 'vip-room', 'admins', 'support-threads', 'acme', 'triage'],
    );
    assert.ok(d.candidates.every((c) => !c.matched));

    assert.equal(routedJson.code, 0, routedJson.stderr);
    const ok = JSON.parse(routedJson.stdout) as { ok: boolean; binding: string; agent: string; why: string };
    assert.deepEqual([ok.ok, ok.binding, ok.agent, ok.why], [true, 'telegram', 'support', 'telegram (tier channel: channel=telegram)']);

    assert.equal(badKind.code, 2);
    assert.match(badKind.stderr, /--peer-kind.*dm, group or channel/);
    assert.equal(existsSync(join(dir, '.spine')), false, 'explain opens no store');
  });
});

describe('spine agents', () => {
  let dir: string;
  before(() => (dir = project()));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('list --bindings prints the routing table in precedence order (tier, then config order)', async () => {
    const [text, json] = await Promise.all([spine(dir, ['agents', 'list', '--bindings']), spine(dir, ['agents', 'list', '--bindings', '--json'])]);
    assert.equal(text.code, 0, text.stderr);
    const rows = text.stdout.trimEnd().split('\n').slice(2);
    assert.deepEqual(
      rows.map((l) => l.split(/\s+/).slice(0, 3)),
      [
        ['2', 'vip-room', 'peer'],
        ['4', 'support-threads', 'thread'],
        ['3', 'admins', 'group+roles'],
        ['1', 'ops-room', 'group'],
        ['5', 'acme', 'account'],
        ['0', 'telegram', 'channel'],
        ['6', 'triage', 'channel'],
      ],
    );
    assert.match(text.stdout, /triage\s+channel\s+channel=desk\s+router classifier → billing\|support \(fallback support\)\s+default/);
    assert.match(text.stdout, /telegram\s+channel\s+channel=telegram\s+support\s+per-peer/);
    assert.match(text.stdout, /admins\s+group\+roles\s+group=G-OPS roles=admin\s+ops/);
    assert.equal(json.code, 0, json.stderr);
    const listed = (JSON.parse(json.stdout) as { bindings: Array<{ id: string; tier: string; order: number }> }).bindings;
    assert.deepEqual(
      listed.map((b) => b.id),
      IN_TIER_ORDER,
    );
  });

  it('add writes a valid agent into the config, keeping its comments', async () => {
    const file = join(dir, 'spine.config.json5');
    const r = await spine(dir, ['agents', 'add', 'helper', '--module', './agents.ts', '--export', 'support', '--description', 'helps']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /added agent helper to .*spine\.config\.json5/);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^\/\/ Routing fixture for test\/routing-cli\.test\.ts/);
    assert.match(text, /helper: \{"kind":"function","module":"\.\/agents\.ts","export":"support","description":"helps"\}/);
    const list = await spine(dir, ['agents', 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    const agents = (JSON.parse(list.stdout) as { agents: Array<{ name: string; kind: string }> }).agents;
    assert.equal(agents.find((a) => a.name === 'helper')?.kind, 'function');
    // The rest of the config (agents and bindings) is untouched and still compiles: `list` loaded it.
    assert.deepEqual(agents.map((a) => a.name).sort(), ['billing', 'classifier', 'concierge', 'helper', 'ops', 'support']);
  });

  it('a bad addition is refused with exit 2 and the file unchanged', async () => {
    const file = join(dir, 'spine.config.json5');
    const before = readFileSync(file, 'utf8');
    const [missing, noExport, dup, badName] = await Promise.all([
      spine(dir, ['agents', 'add', 'ghost', '--module', './no-such-agent.ts']),
      spine(dir, ['agents', 'add', 'ghost2', '--module', './agents.ts', '--export', 'nobody']),
      spine(dir, ['agents', 'add', 'ops', '--module', './agents.ts', '--export', 'ops']),
      // A name the schema refuses (compiling alone does not check it: it used to be written, breaking the file).
      spine(dir, ['agents', 'add', '9lives', '--module', './agents.ts', '--export', 'ops']),
    ]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /agents\.ghost\.module/);
    assert.equal(noExport.code, 2, noExport.stderr);
    assert.match(noExport.stderr, /agents\.ghost2/);
    assert.equal(dup.code, 2, dup.stderr);
    assert.match(dup.stderr, /agent "ops" exists already/);
    assert.equal(badName.code, 2, badName.stderr);
    assert.match(badName.stderr, /agents\.9lives/);
    assert.equal(readFileSync(file, 'utf8'), before, 'nothing was written');
  });
});

describe('spine sessions', () => {
  let dir: string;
  let db: string;
  const TG = 'agent:support:peer:4242';
  const OPS = 'agent:ops:slack:group:G-OPS';

  const msg = (over: Partial<Envelope>): Envelope => ({
    channel: 'telegram',
    account: 'default',
    peer: { kind: 'dm', id: '4242' },
    parentPeer: null,
    sender: { id: '4242' },
    thread: null,
    text: '',
    data: null,
    idempotencyKey: `k-${Math.random()}`,
    replyTo: null,
    ...over,
  });

  before(async () => {
    dir = project();
    db = `sqlite:${join(dir, 'spine.db')}`;
    // Sessions made the real way: envelopes through Intake, run by a worker, on the db the CLI will open.
    const config = await loadConfig(join(dir, 'spine.config.json5'));
    const store = openStore({ url: db, durability: 'fast' });
    await store.migrate();
    const intake = new Intake(store, config.registry, config.routing, systemClock);
    const worker = new Worker({ store, registry: config.registry, options: config.worker });
    await worker.start();
    try {
      for (const e of [msg({ text: 'hello' }), msg({ text: 'again' }), msg({ channel: 'slack', peer: { kind: 'group', id: 'G-OPS' }, text: 'deploy?' })]) {
        const r = await intake.accept(e, { actor: 'test' });
        assert.equal((await finished(store, r.run!.id)).state, 'succeeded');
      }
    } finally {
      await worker.stop();
      await store.close();
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('list shows each session with its message count and free lane', async () => {
    const [text, json, filtered] = await Promise.all([
      spine(dir, ['sessions', 'list', '--db', db]),
      spine(dir, ['sessions', 'list', '--db', db, '--json']),
      spine(dir, ['sessions', 'list', '--db', db, '--agent', 'ops', '--json']),
    ]);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(filtered.code, 0, filtered.stderr);
    assert.match(text.stdout, /^SESSION\s+AGENT\s+MESSAGES\s+LANE\s+LAST ACTIVE\s+RESET$/m);
    assert.match(text.stdout, new RegExp(`^${TG}\\s+support\\s+2\\s+free\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ\\s+-$`, 'm'));
    assert.match(text.stdout, new RegExp(`^${OPS}\\s+ops\\s+1\\s+free`, 'm'));
    const sessions = (JSON.parse(json.stdout) as { sessions: SessionInfo[] }).sessions;
    assert.deepEqual(
      sessions.map((s) => s.key),
      [OPS, TG],
      'most recently active first',
    );
    assert.deepEqual(
      (JSON.parse(filtered.stdout) as { sessions: SessionInfo[] }).sessions.map((s) => s.key),
      [OPS],
    );
  });

  it('show prints the history later turns will see; fork copies it; reset empties it', async () => {
    const show = await spine(dir, ['sessions', 'show', TG, '--db', db]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`^session\\s+${TG}$`, 'm'));
    assert.match(show.stdout, /^agent\s+support$/m);
    assert.match(show.stdout, /^lane\s+free$/m);
    assert.match(show.stdout, /^messages\s+2 \(epoch 0\)$/m);
    const lines = show.stdout.split('\n').filter((l) => /Z {2}(user|agent) /.test(l));
    assert.equal(lines.length, 4);
    assert.match(lines[0]!, /user\s+hello$/);
    assert.match(lines[1]!, /agent\s+\{"agent":"support","reply":"support got: hello"\}$/);
    assert.match(lines[2]!, /user\s+again$/);

    const fork = await spine(dir, ['sessions', 'fork', TG, '--as', 'agent:support:fork:cli', '--db', db]);
    assert.equal(fork.code, 0, fork.stderr);
    assert.match(fork.stdout, new RegExp(`^forked ${TG} → agent:support:fork:cli$`, 'm'));
    const [forkShow, forkAgain, autoName] = await Promise.all([
      spine(dir, ['sessions', 'show', 'agent:support:fork:cli', '--db', db, '--json']),
      spine(dir, ['sessions', 'fork', TG, '--as', 'agent:support:fork:cli', '--db', db]),
      spine(dir, ['sessions', 'fork', OPS, '--db', db, '--json']),
    ]);
    assert.equal(forkShow.code, 0, forkShow.stderr);
    const forked = JSON.parse(forkShow.stdout) as { session: SessionInfo; history: Array<{ role: string; text?: string }> };
    assert.equal(forked.session.forkedFrom, TG);
    assert.deepEqual(
      forked.history.map((m) => m.role + ':' + (m.text ?? '')),
      ['user:hello', 'agent:', 'user:again', 'agent:'],
    );
    assert.equal(forkAgain.code, 3, 'the fork key is taken');
    assert.match(forkAgain.stderr, /exists already/);
    assert.equal(autoName.code, 0, autoName.stderr);
    assert.match((JSON.parse(autoName.stdout) as { session: SessionInfo }).session.key, /^agent:ops:fork:/);

    const reset = await spine(dir, ['sessions', 'reset', TG, '--db', db]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /session agent:support:peer:4242 reset/);
    const after = await spine(dir, ['sessions', 'show', TG, '--db', db, '--json']);
    const shown = JSON.parse(after.stdout) as { session: SessionInfo; history: unknown[] };
    assert.equal(shown.session.epoch, 1);
    assert.ok(shown.session.resetAt !== null);
    assert.deepEqual(shown.history, []);
    // The fork keeps what it was seeded with.
    const forkAfter = JSON.parse((await spine(dir, ['sessions', 'show', 'agent:support:fork:cli', '--db', db, '--json'])).stdout) as { history: unknown[] };
    assert.equal(forkAfter.history.length, 4);
  });

  it('unknown sessions and bad subcommands are refused with their exit codes', async () => {
    const [show, reset, sub] = await Promise.all([
      spine(dir, ['sessions', 'show', 'agent:nobody:main', '--db', db]),
      spine(dir, ['sessions', 'reset', 'agent:nobody:main', '--db', db]),
      spine(dir, ['sessions', 'merge', '--db', db]),
    ]);
    for (const r of [show, reset]) {
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /session "agent:nobody:main" not found/);
    }
    assert.equal(sub.code, 2);
    assert.match(sub.stderr, /unknown subcommand "merge"/);
  });
});
