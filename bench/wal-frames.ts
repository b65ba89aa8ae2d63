/**
 * Where SQLite W2's commits write: the WAL frames of the processing phase, by the
 * b-tree (table or index) each page belongs to.
 *
 *   node bench/wal-frames.ts [--tasks 3000] [--durability strict|fast] [--json]
 *
 * The runs are queued first; then the WAL is checkpointed and truncated, and a
 * second connection holds a read snapshot while one worker (concurrency 8) processes
 * them, so no checkpoint can copy a frame back or restart the WAL: every frame written
 * is still in the file when it is read. Each frame's page is named with `dbstat`.
 * A page rewritten by several commits counts once per commit: that is what the WAL
 * writes. Measurement only: nothing here is a target.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { submitRun } from '../test/fixtures/submit-run.ts';
import { openStore } from '../src/runtime/open-store.ts';
import { badOption, benchArgs, durabilityOption, makeRegistry, startWorker, trackStore } from './harness.ts';

const args = benchArgs('wal', {
  tasks: { type: 'string', default: '3000' },
  durability: { type: 'string', default: 'strict' },
  json: { type: 'boolean', default: false },
});
const tasks = Number(args.tasks);
if (!Number.isInteger(tasks) || tasks < 1) badOption('wal', `--tasks must be a whole number of at least 1 (got ${args.tasks})`);
const durability = durabilityOption('wal', args.durability);

/** Frames of a WAL file: the page each one holds and whether it ends a commit (SQLite's file format, "WAL file format"). */
function walFrames(file: string): Array<{ page: number; commit: boolean }> {
  const wal = readFileSync(file);
  if (wal.length < 32) return [];
  const pageSize = wal.readUInt32BE(8);
  const salts = [wal.readUInt32BE(16), wal.readUInt32BE(20)];
  const frames: Array<{ page: number; commit: boolean }> = [];
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    // A frame whose salts differ from the header's is left over from before a restart.
    if (wal.readUInt32BE(at + 8) !== salts[0] || wal.readUInt32BE(at + 12) !== salts[1]) break;
    frames.push({ page: wal.readUInt32BE(at), commit: wal.readUInt32BE(at + 4) !== 0 });
  }
  return frames;
}

const dir = mkdtempSync(join(tmpdir(), 'spine-wal-'));
const file = join(dir, 'spine.db');
const store = openStore({ url: `sqlite:${file}`, durability });
try {
  await store.migrate();
  const tracked = trackStore(store);
  const registry = makeRegistry({ noop: () => ({ output: null }) });
  let done = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((resolve) => (allDone = resolve));
  tracked.onFinish = () => {
    if (++done === tasks) allDone();
  };
  await Promise.all(Array.from({ length: tasks }, () => submitRun(tracked.store, registry, { agent: 'noop', input: null }, Date.now())));

  const reader = new DatabaseSync(file);
  reader.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  reader.exec('BEGIN');
  reader.prepare('SELECT COUNT(*) FROM tasks').get();
  const worker = await startWorker(tracked.store, registry);
  await finished;
  await worker.stop();
  reader.exec('COMMIT');

  const owner = new Map<number, string>();
  for (const row of reader.prepare('SELECT name, pageno FROM dbstat').all() as Array<{ name: string; pageno: number }>) owner.set(row.pageno, row.name);
  const frames = walFrames(`${file}-wal`);
  reader.close();

  const commits = frames.filter((f) => f.commit).length;
  const byTree = new Map<string, number>();
  for (const f of frames) {
    const name = owner.get(f.page) ?? 'a page free since'; // dbstat names every page in use, page 1 (sqlite_schema) too
    byTree.set(name, (byTree.get(name) ?? 0) + 1);
  }
  const rows = [...byTree].sort((a, b) => b[1] - a[1]).map(([tree, n]) => ({ tree, perTask: n / tasks, perCommit: n / commits }));
  const summary = { tasks, durability, commits, frames: frames.length, framesPerTask: frames.length / tasks, framesPerCommit: frames.length / commits, tasksPerCommit: tasks / commits };
  if (args.json) console.log(JSON.stringify({ ...summary, byTree: rows }, null, 2));
  else {
    console.log(`SQLite W2, ${tasks} no-op tasks, one worker at concurrency 8, durability ${durability}: WAL frames of the processing phase`);
    console.log(`${summary.frames} frames in ${commits} commits: ${summary.framesPerTask.toFixed(2)} per task, ${summary.framesPerCommit.toFixed(1)} per commit of ${summary.tasksPerCommit.toFixed(1)} tasks`);
    console.log('');
    console.log(`${'b-tree'.padEnd(28)}  per task  per commit`);
    for (const r of rows) console.log(`${r.tree.padEnd(28)}  ${r.perTask.toFixed(3).padStart(8)}  ${r.perCommit.toFixed(2).padStart(10)}`);
  }
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
