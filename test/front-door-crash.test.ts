// A crash loop through the front door: concurrent clients POST keyed envelopes to
// `spine up` over HTTP while it is SIGKILLed at random moments, several times; each
// client retries a key until it is acknowledged, as a real client would. At the end:
// every acknowledged envelope has exactly one run and it finished; and the tool effect
// each run makes happened once per key — a repeat only where flagged `maybeRepeated`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openStore } from '../src/runtime/open-store.ts';
import { until } from './helpers.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const ROUNDS = Number(process.env.SPINE_CRASH_ROUNDS ?? 4);
const CLIENTS = 4;

function up(cwd: string, db: string) {
  const env = { ...process.env };
  delete env.SPINE_DB;
  delete env.SPINE_CONFIG;
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, [MAIN, 'up', '--db', `sqlite:${db}`, '--port', '0', '--insecure-local', '--durability', 'strict'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const url = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => {
      const m = /gateway (http:\/\/\S+?)[;\s]/.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`spine up exited (${code}) before it started:\n${out}\n${err}`)));
  });
  url.catch(() => {});
  return { url, exited, kill: (s: NodeJS.Signals) => void child.kill(s), stderr: () => err };
}

describe('crash loop through the front door', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'spine-doorcrash-'));
    // Turn 1 asks for the tool; turn 2 answers. The tool appends one line per execution.
    writeFileSync(
      join(dir, 'agent.ts'),
      "export default (input) => input.results.length ? { output: 'noted' } : { actions: [{ type: 'tool', tool: 'note', input: { text: input.task.input.text } }] };\n",
    );
    writeFileSync(
      join(dir, 'note.ts'),
      "import { appendFileSync } from 'node:fs';\nexport default (input, ctx) => { appendFileSync(new URL('./effects.jsonl', import.meta.url), JSON.stringify({ key: ctx.idempotencyKey, text: input.text, maybeRepeated: ctx.maybeRepeated }) + '\\n'); return { ok: true }; };\n",
    );
    writeFileSync(
      join(dir, 'spine.config.json5'),
      JSON.stringify({
        agents: { noter: { kind: 'function', module: './agent.ts', grants: { tools: ['note'] } } },
        tools: { note: { module: './note.ts' } },
        bindings: [{ id: 'all', match: {}, agent: 'noter' }],
        worker: { leaseMs: 1_000, drainMs: 200 },
      }),
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(`${ROUNDS} SIGKILLs under ${CLIENTS} concurrent clients: every acknowledged envelope has one finished run, effects once`, { timeout: 300_000 }, async (t) => {
    const db = join(dir, '.spine', 'spine.db');
    const acked = new Set<string>();
    // The live process's URL, as a promise the clients await: pending while none is up.
    let announce!: (url: string) => void;
    let base: Promise<string> = new Promise((r) => (announce = r));
    let stop = false;
    let next = 0;
    const client = async () => {
      let key: string | null = null;
      while (!stop) {
        key ??= `k-${next++}`;
        const target = await base;
        if (stop) break;
        try {
          const res = await fetch(`${target}/v1/envelopes`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'idempotency-key': key },
            body: JSON.stringify({ text: key }),
          });
          await res.body?.cancel();
          if (res.status === 202 || res.status === 200) {
            acked.add(key);
            key = null;
          } else assert.ok(res.status === 503, `only 503 while it goes down, got ${res.status}`);
        } catch {
          // Connection refused or reset: the process is gone (its URL was withdrawn first);
          // the loop awaits the next one and retries the same key there.
        }
      }
    };
    const clients = Array.from({ length: CLIENTS }, client);

    for (let round = 0; round < ROUNDS; round++) {
      const p = up(dir, db);
      t.after(() => p.kill('SIGKILL'));
      announce(await p.url);
      const target = acked.size + 20 + Math.floor(Math.random() * 40);
      await until(`round ${round}: ${target} acknowledged`, () => acked.size >= target, 60_000);
      // A random moment, counted in acknowledgements rather than time: other requests are in flight, some turns running.
      const extra = acked.size + 1 + Math.floor(Math.random() * 5);
      await until(`round ${round}: ${extra} acknowledged`, () => acked.size >= extra, 60_000);
      base = new Promise((r) => (announce = r));
      p.kill('SIGKILL');
      assert.equal(await p.exited, null, 'killed, not exited');
    }
    stop = true;
    announce(''); // releases the clients waiting for a process that will not come
    await Promise.all(clients);

    // A last, clean start finishes every run.
    const last = up(dir, db);
    t.after(() => last.kill('SIGKILL'));
    await last.url;
    const store = openStore({ url: `sqlite:${db}`, durability: 'fast' });
    t.after(() => store.close());
    const envelopes = async () => (await store.envelopes.list({ limit: 1_000_000 })).filter((e) => e.idempotencyKey?.startsWith('api:'));
    await until('every run finished', async () => (await store.runs.list({ limit: 1_000_000 })).every((r) => r.state === 'succeeded' || r.state === 'failed'), 120_000);
    last.kill('SIGTERM');
    assert.equal(await last.exited, 0, last.stderr());

    const byKey = new Map((await envelopes()).map((e) => [(e.idempotencyKey ?? '').slice('api:'.length), e]));
    const runs = new Map((await store.runs.list({ limit: 1_000_000 })).map((r) => [r.id, r]));
    for (const key of acked) {
      const e = byKey.get(key);
      assert.ok(e, `acknowledged ${key} is stored`);
      const run = e.runId ? runs.get(e.runId) : undefined;
      assert.equal(run?.state, 'succeeded', `${key}: its run finished (${JSON.stringify(run?.error)})`);
    }
    assert.equal(new Set([...byKey.values()].map((e) => e.runId)).size, byKey.size, 'one run per key');

    // Effects: once per effect key, a repeat only when flagged.
    const lines = existsSync(join(dir, 'effects.jsonl')) ? readFileSync(join(dir, 'effects.jsonl'), 'utf8').trim().split('\n').filter(Boolean) : [];
    const seen = new Map<string, number>();
    for (const line of lines) {
      const { key, maybeRepeated } = JSON.parse(line) as { key: string; maybeRepeated: boolean };
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      if (n > 1) assert.equal(maybeRepeated, true, `effect ${key} ran again without maybeRepeated`);
    }
    const texts = new Set(lines.map((l) => (JSON.parse(l) as { text: string }).text));
    for (const key of acked) assert.ok(texts.has(key), `the effect of ${key} happened`);
    t.diagnostic(`${acked.size} acknowledged over ${ROUNDS} SIGKILLs; ${lines.length} effect executions for ${seen.size} effects`);
  });
});
