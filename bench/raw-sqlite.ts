/**
 * The raw limit: what node:sqlite itself does on the store's settings (WAL,
 * synchronous FULL for strict / NORMAL for fast), one single-row
 * BEGIN IMMEDIATE; INSERT; UPDATE; COMMIT transaction after another.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { Durability } from '../src/store/store.ts';
import { log } from './harness.ts';
import { round, summarize, type Summary } from './stats.ts';

export interface RawResult {
  durability: Durability;
  synchronous: 'FULL' | 'NORMAL';
  transactions: number;
  elapsedMs: number;
  txPerSec: number;
  perTxMs: Summary;
}

export function rawSqlite(opts: { root: string; durability: Durability; quick: boolean }): RawResult {
  const synchronous = opts.durability === 'strict' ? 'FULL' : 'NORMAL';
  const budgetMs = opts.quick ? 300 : 2_000;
  const dir = mkdtempSync(join(opts.root, `raw-${opts.durability}-`));
  const db = new DatabaseSync(join(dir, 'raw.db'));
  try {
    db.exec(`PRAGMA journal_mode = WAL;
      PRAGMA synchronous = ${synchronous};
      PRAGMA busy_timeout = 5000;
      PRAGMA foreign_keys = ON;
      CREATE TABLE tasks (id INTEGER PRIMARY KEY, state TEXT NOT NULL, input TEXT NOT NULL, updated_at INTEGER NOT NULL);`);
    const insert = db.prepare(`INSERT INTO tasks (state, input, updated_at) VALUES ('queued', ?, ?)`);
    const update = db.prepare(`UPDATE tasks SET state = 'succeeded', updated_at = ? WHERE id = ?`);
    const one = (i: number) => {
      db.exec('BEGIN IMMEDIATE');
      const { lastInsertRowid } = insert.run('null', i);
      update.run(i, lastInsertRowid);
      db.exec('COMMIT');
    };
    for (let i = 0; i < 200; i++) one(i); // warm-up
    log(`[${opts.durability}] raw node:sqlite: insert+update transactions for ${budgetMs} ms (synchronous=${synchronous})`);
    const lat: number[] = [];
    const start = performance.now();
    let now = start;
    let i = 0;
    while (now - start < budgetMs) {
      const t = performance.now();
      one(i++);
      now = performance.now();
      lat.push(now - t);
    }
    const elapsed = now - start;
    const s = summarize(lat);
    return {
      durability: opts.durability,
      synchronous,
      transactions: i,
      elapsedMs: round(elapsed, 1),
      txPerSec: round((i / elapsed) * 1000, 0),
      perTxMs: { n: s.n, mean: round(s.mean, 4), p50: round(s.p50, 4), p90: round(s.p90, 4), p99: round(s.p99, 4), max: round(s.max, 4) },
    };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
