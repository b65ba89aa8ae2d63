import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/spine.js', import.meta.url));
const OLD_NODE_CANDIDATES = ['/usr/bin/node', '/usr/local/bin/node'];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `spine` command in a child process. */
function spine(cwd: string, args: string[], opts: { entry?: string; node?: string } = {}): Promise<Result> {
  const env = { ...process.env };
  delete env.SPINE_DB;
  delete env.SPINE_CONFIG;
  delete env.SPINE_FAULTS;
  return new Promise((resolve, reject) => {
    const child = spawn(opts.node ?? process.execPath, [opts.entry ?? MAIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function countRuns(dbFile: string): number {
  const db = new DatabaseSync(dbFile);
  try {
    return Number((db.prepare('SELECT COUNT(*) AS n FROM runs').get() as { n: number }).n);
  } finally {
    db.close();
  }
}

describe('spine CLI', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'spine-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const db = () => `sqlite:${join(dir, '.spine', 'spine.db')}`;

  it('init scaffolds a project and refuses to overwrite it', async () => {
    const r = await spine(dir, ['init']);
    assert.equal(r.code, 0, r.stderr);
    for (const f of ['spine.config.json5', 'agents/lead.ts', 'agents/helper.ts', 'tools/notes.ts', '.gitignore']) assert.ok(existsSync(join(dir, f)), f);
    const again = await spine(dir, ['init']);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already exists/);
  });

  it('up --send runs the scaffolded multi-agent project to completion', async () => {
    const r = await spine(dir, ['up', '--db', db(), '--port', '0', '--send', 'lead', '--text', 'hello spine world', '--exit']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /gateway http:\/\/127\.0\.0\.1:\d+/, 'up runs the gateway too');
    assert.match(r.stdout, /lead hands off to helper/);
    assert.match(r.stdout, /called tool notes\.save/);
    assert.match(r.stdout, /succeeded/);
    assert.match(r.stdout, /"answer": "3 words, 17 characters"/);
    assert.match(readFileSync(join(dir, '.spine', 'notes.jsonl'), 'utf8'), /asked: hello spine world/);
  });

  it('send --wait blocks until a separate `up` process finishes the run; SIGTERM drains it', async () => {
    const env = { ...process.env };
    delete env.SPINE_DB;
    const up = spawn(process.execPath, [MAIN, 'up', '--db', db(), '--port', '0', '--quiet'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => up.on('close', (code) => resolve(code)));
    try {
      const r = await spine(dir, ['send', 'lead', 'four little words here', '--wait', '--db', db(), '--json']);
      assert.equal(r.code, 0, r.stderr);
      const { run, tasks } = JSON.parse(r.stdout) as { run: { state: string; output: { answer: string } }; tasks: unknown[] };
      assert.equal(run.state, 'succeeded');
      assert.equal(run.output.answer, '4 words, 22 characters');
      assert.equal(tasks.length, 2);
    } finally {
      up.kill('SIGTERM');
    }
    assert.equal(await exited, 0, 'up exits cleanly after draining');
  });

  it('send without --wait queues; runs list/show/cancel work with --json', async () => {
    const sent = await spine(dir, ['send', 'lead', 'queued only', '--db', db(), '--json', '--idempotency-key', 'k1']);
    assert.equal(sent.code, 0, sent.stderr);
    const { run, created } = JSON.parse(sent.stdout) as { run: { id: string; state: string }; created: boolean };
    assert.equal(created, true);
    assert.equal(run.state, 'running');
    const dup = await spine(dir, ['send', 'lead', 'queued only', '--db', db(), '--json', '--idempotency-key', 'k1']);
    assert.equal((JSON.parse(dup.stdout) as { run: { id: string }; created: boolean }).run.id, run.id, 'same key, same run');

    const list = await spine(dir, ['runs', 'list', '--db', db(), '--json']);
    const runs = (JSON.parse(list.stdout) as { runs: Array<{ id: string }> }).runs;
    assert.equal(runs.filter((r) => r.id === run.id).length, 1, 'one run for the key');
    assert.equal(runs[0]!.id, run.id, 'newest first');
    const page = await spine(dir, ['runs', 'list', '--db', db(), '--json', '--limit', '1']);
    const { next } = JSON.parse(page.stdout) as { next: string };
    const rest = await spine(dir, ['runs', 'list', '--db', db(), '--json', '--before', next]);
    assert.deepEqual(
      (JSON.parse(rest.stdout) as { runs: Array<{ id: string }> }).runs.map((r) => r.id),
      runs.slice(1).map((r) => r.id),
      'cursor paging continues where the first page ended',
    );

    const show = await spine(dir, ['runs', 'show', run.id, '--db', db(), '--json']);
    assert.equal(show.code, 0, show.stderr);
    assert.equal((JSON.parse(show.stdout) as { tasks: unknown[] }).tasks.length, 1);

    const cancel = await spine(dir, ['runs', 'cancel', run.id, '--db', db(), '--reason', 'test']);
    assert.equal(cancel.code, 0, cancel.stderr);
    const again = await spine(dir, ['runs', 'cancel', run.id, '--db', db()]);
    assert.equal(again.code, 3, 'cancelling a cancelled run is refused');
    assert.match(again.stderr, /already cancelled/);
    const retry = await spine(dir, ['runs', 'retry', run.id, '--db', db()]);
    assert.equal(retry.code, 3);
    assert.match(retry.stderr, /only a failed run can be retried/);
  });

  it('send --batch sends every line of a JSON Lines file, once per key, and refuses a bad file whole', async () => {
    const file = join(dir, '.spine', 'spine.db');
    const batch = join(dir, 'work.jsonl');
    writeFileSync(batch, ['{"text":"batch one","idempotencyKey":"b-1"}', '', '{"text":"batch two","idempotencyKey":"b-2"}', '{"agent":"lead","text":"batch three"}'].join('\n'));
    const before = countRuns(file);
    const r = await spine(dir, ['send', 'lead', '--batch', batch, '--db', db(), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const sent = JSON.parse(r.stdout) as { results: Array<{ line: number; run: string; created: boolean }>; sent: number; refused: number };
    assert.deepEqual([sent.sent, sent.refused], [3, 0]);
    assert.deepEqual(sent.results.map((x) => x.line), [1, 2, 3], 'answered in order, blank lines skipped');
    assert.equal(countRuns(file), before + 3);
    const again = await spine(dir, ['send', 'lead', '--batch', batch, '--db', db(), '--json']);
    const repeat = JSON.parse(again.stdout) as { results: Array<{ run: string; created: boolean }> };
    assert.deepEqual(repeat.results.slice(0, 2).map((x) => [x.run, x.created]), sent.results.slice(0, 2).map((x) => [x.run, false]), 'the keyed lines find their runs');
    assert.equal(countRuns(file), before + 4, 'only the unkeyed line ran again');

    writeFileSync(batch, ['{"text":"fine"}', '{"text": 5}'].join('\n'));
    const bad = await spine(dir, ['send', 'lead', '--batch', batch, '--db', db()]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /work\.jsonl:2: text/);
    const mixed = await spine(dir, ['send', 'lead', 'text too', '--batch', batch, '--db', db()]);
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /a text argument does not go with --batch/);
    assert.equal(countRuns(file), before + 4, 'nothing sent from a bad file');
  });

  it('bad input gets a clear error, exit code 2, and writes nothing', async () => {
    const file = join(dir, '.spine', 'spine.db');
    const before = countRuns(file);
    const cases: Array<[string[], RegExp]> = [
      [['send', 'nobody', 'hi'], /unknown agent "nobody"/],
      [['send', 'lead', '--input', '{bad'], /--input: not valid JSON/],
      [['send', 'lead', 'text', '--input', '{}'], /either a text argument or --input/],
      [['send'], /<agent>: missing/],
      [['send', 'lead', 'x', '--wait', '--timeout', 'soon'], /--timeout: must be an integer/],
      [['runs', 'list', '--state', 'bogus'], /--state: must be one of/],
      [['runs', 'list', '--frobnicate'], /--frobnicate/],
      [['runs', 'explode'], /unknown subcommand "explode"/],
      [['send', 'lead', 'x', '--durability', 'maybe'], /--durability: must be one of strict, fast/],
    ];
    for (const [args, pattern] of cases) {
      const r = await spine(dir, [...args, '--db', db()]);
      assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, pattern, args.join(' '));
    }
    const unknown = await spine(dir, ['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    assert.equal(countRuns(file), before, 'nothing was written');
  });

  it('input that breaks the agent’s input contract: the field named, exit 2, nothing stored — from send and from up --send alike', async () => {
    const proj = mkdtempSync(join(tmpdir(), 'spine-cli-contract-'));
    try {
      writeFileSync(join(proj, 'agent.ts'), 'export default function () { return { output: "ok" }; }\n');
      writeFileSync(
        join(proj, 'spine.config.json5'),
        `{ contracts: { 'order@1': { schema: { type: 'object', required: ['orderId'], properties: { orderId: { type: 'string' } } } } },
           agents: { orders: { kind: 'function', module: './agent.ts', input: 'order@1' } } }`,
      );
      const pdb = `sqlite:${join(proj, '.spine', 'spine.db')}`;
      const sent = await spine(proj, ['send', 'orders', '--input', '{"orderId": 7}', '--db', pdb]);
      assert.equal(sent.code, 2, sent.stderr);
      assert.match(sent.stderr, /orderId/);
      assert.match(sent.stderr, /must be string/);
      const up = await spine(proj, ['up', '--db', pdb, '--no-gateway', '--send', 'orders', '--input', '{"orderId": 7}', '--exit', '--quiet']);
      assert.equal(up.code, 2, up.stderr);
      assert.match(up.stderr, /orderId/);
      assert.equal(countRuns(join(proj, '.spine', 'spine.db')), 0, 'nothing was stored');
    } finally {
      rmSync(proj, { recursive: true, force: true });
    }
  });

  it('a bad config names the field, exits 2, and creates no database', async () => {
    const other = mkdtempSync(join(tmpdir(), 'spine-cli-bad-'));
    try {
      writeFileSync(join(other, 'spine.config.json5'), `{ agents: { a: { kind: 'command', command: [] } }, worker: { concurrency: 0 } }`);
      const r = await spine(other, ['send', 'a', 'hi']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /agents\.a\.command/);
      assert.match(r.stderr, /worker\.concurrency/);
      const json = await spine(other, ['send', 'a', 'hi', '--json']);
      assert.equal((JSON.parse(json.stderr) as { error: { code: string } }).error.code, 'CONFIG_INVALID');
      assert.equal(existsSync(join(other, '.spine')), false, 'no database was created');
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('migrate reports the version; a newer schema is refused with exit 4', async () => {
    const fresh = `sqlite:${join(dir, 'fresh.db')}`;
    const m = await spine(dir, ['migrate', '--db', fresh, '--json']);
    assert.equal(m.code, 0, m.stderr);
    const status = JSON.parse(m.stdout) as { from: number; version: number; applied: number[] };
    assert.equal(status.from, 0);
    assert.ok(status.version >= 1);
    // Every shipped migration, in order (numbers are pre-assigned per layer, so there may be gaps).
    const shipped = readdirSync(fileURLToPath(new URL('../src/store/migrations/sqlite/', import.meta.url)))
      .filter((f) => /^\d{4}_.*\.sql$/.test(f))
      .map((f) => Number(f.slice(0, 4)))
      .sort((a, b) => a - b);
    assert.deepEqual(status.applied, shipped);
    assert.equal(status.version, shipped.at(-1));
    const raw = new DatabaseSync(join(dir, 'fresh.db'));
    raw.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(999, 'from_the_future', Date.now());
    raw.close();
    const r = await spine(dir, ['runs', 'list', '--db', fresh]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /schema is at version 999/);
  });

  it('the bin entry runs the CLI on Node 24', async () => {
    const r = await spine(dir, ['--version'], { entry: BIN });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\d+\.\d+\.\d+/);
  });

  // `up` holds queued work: the small young generation; a gateway only serves: V8's defaults (bin/heap-flags.js).
  for (const [command, serving, small] of [
    ['up', /gateway http:\/\//, true],
    ['gateway', /listening on http:\/\//, false],
  ] as const) {
    it(`the bin entry starts \`${command}\` ${small ? 'with the small young generation (same process)' : "with V8's own heap sizes"}, and SIGTERM still drains it`, { skip: existsSync('/proc/self/cmdline') ? false : 'no /proc to read a command line from' }, async () => {
      const env = { ...process.env };
      delete env.NODE_OPTIONS;
      const config = fileURLToPath(new URL('../examples/briefing/spine.config.json5', import.meta.url));
      const child = spawn(process.execPath, [BIN, command, '--config', config, '--db', `sqlite:${join(dir, `bin-${command}.db`)}`, '--port', '0'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      let out = '';
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (serving.test(out)) resolve();
        });
        void exited.then(() => reject(new Error(`${command} exited before serving:\n${out}`)));
      });
      const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
      child.kill('SIGTERM');
      assert.equal(await exited, 0, out);
      assert.equal(argv.includes('--max-semi-space-size=2'), small, argv.join(' '));
      assert.equal(argv.includes('--heap-growing-percent=50'), small, argv.join(' '));
      assert.ok(argv.includes(BIN) && argv.includes(command), argv.join(' '));
    });
  }

  const oldNode = OLD_NODE_CANDIDATES.find((p) => existsSync(p) && Number(execFileSync(p, ['-p', 'process.versions.node.split(".")[0]']).toString()) < 24);
  it('the bin entry hands over to the bundled Node 24 when started by an older Node', { skip: oldNode ? false : 'no Node older than 24 on this machine to try' }, async () => {
    const r = await spine(dir, ['runs', 'frobnicate', '--db', db()], { entry: BIN, node: oldNode! });
    assert.equal(r.code, 2, 'the exit code of the Node 24 child comes through');
    assert.match(r.stderr, /unknown subcommand "frobnicate"/);
  });
});
