// Opening the embedded store while another process holds the database's lock waits for
// the lock (busy timeout set before any other pragma) instead of failing with
// `database is locked` (issue 17: a CLI command died so while `spine up` was writing).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openStore } from '../src/runtime/open-store.ts';

/** A process that takes the exclusive lock of a fresh (not yet WAL) database and holds it for `holdMs`. */
const HOLDER = `
const { DatabaseSync } = require('node:sqlite');
const db = new DatabaseSync(process.argv[1]);
db.exec('CREATE TABLE IF NOT EXISTS t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);');
process.stdout.write('locked\\n');
setTimeout(() => { db.exec('COMMIT'); db.close(); }, Number(process.argv[2]));
`;

test('opening the SQLite store waits while another process holds the lock', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spine-open-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'spine.db');
  const holder = spawn(process.execPath, ['-e', HOLDER, path, '400'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => holder.on('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    holder.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
    void exited.then((code) => reject(new Error(`the lock holder exited (${code}) before locking`)));
  });
  // Switching the database to WAL needs the lock the other process holds: without a busy
  // timeout in force first, this threw `database is locked` at once.
  const store = openStore({ url: `sqlite:${path}`, durability: 'strict' });
  try {
    await store.migrate();
    const { current, known } = await store.schemaStatus();
    assert.equal(current, known);
  } finally {
    await store.close();
  }
  assert.equal(await exited, 0);
});
