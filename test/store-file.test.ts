// The SQLite store file is watched: deleted (here, moved away: the same thing from the
// process's view, but recoverable) under load, `spine up` stops acknowledging (503),
// says why and exits 5 after draining; restarting against the missing file is an error
// (the marker beside the config remembers the store), not a fresh empty store; and once
// the file is put back, every envelope that was acknowledged is in it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openStore } from '../src/runtime/open-store.ts';
import { until } from './helpers.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

function spine(cwd: string, args: string[]) {
  const env = { ...process.env };
  delete env.SPINE_DB;
  delete env.SPINE_CONFIG;
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, [MAIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
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
    void exited.then((code) => reject(new Error(`spine exited (${code}) before it started:\n${out}\n${err}`)));
  });
  url.catch(() => {});
  return { exited, url, stdout: () => out, stderr: () => err, kill: (s: NodeJS.Signals) => void child.kill(s) };
}

describe('the store file is watched', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'spine-storefile-'));
    writeFileSync(join(dir, 'echo.ts'), 'export default (input) => ({ output: { got: input.task.input } });\n');
    writeFileSync(join(dir, 'spine.config.json5'), JSON.stringify({ agents: { echo: { kind: 'function', module: './echo.ts' } }, bindings: [{ id: 'all', match: {}, agent: 'echo' }], worker: { drainMs: 200 } }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('deleted under load: 503, exit 5, restart refused; restored: every acknowledged envelope is there', { timeout: 180_000 }, async (t) => {
    const db = join(dir, '.spine', 'spine.db');
    const up = spine(dir, ['up', '--db', `sqlite:${db}`, '--port', '0', '--insecure-local']);
    t.after(() => up.kill('SIGKILL'));
    const base = await up.url;
    // Created private: the folder 0700, the file 0600.
    assert.equal(statSync(join(dir, '.spine')).mode & 0o777, 0o700);
    assert.equal(statSync(db).mode & 0o777, 0o600);

    const acked = new Set<string>();
    const statuses = new Map<number, number>();
    let moved = false;
    let stop = false;
    const client = async (c: number) => {
      for (let i = 0; !stop; i++) {
        const key = `c${c}-${i}`;
        let status: number;
        try {
          const res = await fetch(`${base}/v1/envelopes`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'idempotency-key': key },
            body: JSON.stringify({ text: key }),
          });
          status = res.status;
          await res.body?.cancel();
        } catch {
          return; // the process is gone
        }
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status === 202 || status === 200) acked.add(key);
        else if (!moved) assert.fail(`status ${status} before the file was moved`);
        else assert.equal(status, 503, 'after the loss: unavailable, nothing else');
      }
    };
    const clients = [0, 1, 2, 3].map(client);
    await until('40 envelopes acknowledged', () => acked.size >= 40, 60_000);
    // "Delete" the store under load: every file of it leaves its path at once.
    const away = join(dir, 'away');
    mkdirSync(away);
    for (const f of ['spine.db', 'spine.db-wal', 'spine.db-shm']) if (existsSync(join(dir, '.spine', f))) renameSync(join(dir, '.spine', f), join(away, f));
    moved = true;
    const code = await up.exited;
    stop = true;
    await Promise.all(clients);
    assert.equal(code, 5, `exit ${code}\n${up.stderr()}`);
    assert.match(up.stderr(), /store lost: the store file .* was deleted/);

    // Restarting against the missing file is an error, not a fresh empty store.
    const again = spine(dir, ['runs', 'list', '--db', `sqlite:${db}`]);
    assert.equal(await again.exited, 5, again.stderr());
    assert.match(again.stderr(), /existed .* and is missing; restore it, or pass --create/);
    assert.equal(existsSync(db), false, 'no empty store was created');

    // Put back: every acknowledged envelope is in the store.
    for (const f of ['spine.db', 'spine.db-wal', 'spine.db-shm']) if (existsSync(join(away, f))) renameSync(join(away, f), join(dir, '.spine', f));
    const store = openStore({ url: `sqlite:${db}`, durability: 'fast' });
    t.after(() => store.close());
    const stored = new Set((await store.envelopes.list({ limit: 1_000_000 })).map((e) => e.idempotencyKey));
    const missing = [...acked].filter((key) => !stored.has(`api:${key}`));
    assert.deepEqual(missing, [], `acknowledged but lost (${acked.size} acknowledged; statuses ${JSON.stringify([...statuses])})`);
  });
});
