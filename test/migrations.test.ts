// Schema migrations on a real SQLite file: applied once, recorded per version, and
// a database from a newer (or older) Spine is refused with a clear error.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SchemaOutdatedError, SchemaTooNewError } from '../src/core/errors.ts';
import { openStore } from '../src/runtime/open-store.ts';
import type { Store } from '../src/store/store.ts';

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'store', 'migrations', 'sqlite');
/** The migrations this build ships, read from disk so the test follows new ones. */
const SHIPPED = readdirSync(MIGRATIONS_DIR)
  .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
  .sort()
  .map((f) => ({ version: Number(f.slice(0, 4)), name: f.slice(5, -4) }));
// The highest version (layers built in parallel hold pre-assigned numbers, so there may be gaps).
const KNOWN = Math.max(...SHIPPED.map((m) => m.version));

/** An unmigrated store on a fresh temp file, closed and deleted after the test. */
function freshStore(t: TestContext): { store: Store; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'spine-migrate-'));
  const path = join(dir, 'spine.db');
  const store = openStore({ url: `sqlite:${path}`, durability: 'fast' });
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, path };
}

/** Reads the database file with a separate connection, as another process would. */
function query<T>(path: string, sql: string, ...params: Array<string | number>): T[] {
  const db = new DatabaseSync(path);
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

test('the shipped migrations are numbered in increasing order, each number once (numbers are assigned per layer, so one may be missing)', () => {
  assert.ok(KNOWN >= 1);
  const versions = SHIPPED.map((m) => m.version);
  assert.deepEqual(versions, [...new Set(versions)].sort((a, b) => a - b));
  assert.equal(versions[0], 1);
});

test('a fresh database migrates to the known version, one schema_migrations row per migration', async (t) => {
  const { store, path } = freshStore(t);
  assert.deepEqual(await store.schemaStatus(), { current: 0, known: KNOWN });

  const before = Date.now();
  const result = await store.migrate();
  assert.deepEqual(result, { applied: SHIPPED.map((m) => m.version), version: KNOWN });
  assert.deepEqual(await store.schemaStatus(), { current: KNOWN, known: KNOWN });
  await store.assertSchemaCurrent();

  const rows = query<{ version: number; name: string; applied_at: number }>(path, 'SELECT version, name, applied_at FROM schema_migrations ORDER BY version');
  assert.deepEqual(
    rows.map((r) => ({ version: r.version, name: r.name })),
    SHIPPED,
  );
  for (const r of rows) assert.ok(r.applied_at >= before && r.applied_at <= Date.now());
  // The schema is really there: the store works.
  const tables = query<{ name: string }>(path, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).map((r) => r.name);
  for (const table of ['audit_events', 'effects', 'runs', 'schema_migrations', 'tasks', 'turns', 'workers']) assert.ok(tables.includes(table), table);
  const { run } = await store.runs.create({ agent: 'a', input: 1, maxAttempts: 1 }, Date.now());
  assert.equal((await store.runs.get(run.id))!.state, 'running');
});

test('migrating again applies nothing and changes nothing', async (t) => {
  const { store, path } = freshStore(t);
  await store.migrate();
  const rowsBefore = query(path, 'SELECT * FROM schema_migrations ORDER BY version');
  const again = await store.migrate();
  assert.deepEqual(again, { applied: [], version: KNOWN });
  assert.deepEqual(query(path, 'SELECT * FROM schema_migrations ORDER BY version'), rowsBefore);
  await store.assertSchemaCurrent();
});

test('a database newer than this build is refused by migrate() and assertSchemaCurrent(), naming both versions', async (t) => {
  const { store, path } = freshStore(t);
  await store.migrate();
  const newer = KNOWN + 1;
  const db = new DatabaseSync(path);
  db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(newer, 'from_the_future', Date.now());
  db.close();

  const check = (err: unknown) => {
    assert.ok(err instanceof SchemaTooNewError, String(err));
    assert.equal(err.code, 'SCHEMA_TOO_NEW');
    assert.equal(err.retryable, false);
    assert.equal(err.found, newer);
    assert.equal(err.known, KNOWN);
    assert.match(err.message, new RegExp(`schema is at version ${newer}\\b`));
    assert.match(err.message, new RegExp(`only up to ${KNOWN}\\b`));
    return true;
  };
  await assert.rejects(store.migrate(), check);
  await assert.rejects(store.assertSchemaCurrent(), check);
  assert.deepEqual(await store.schemaStatus(), { current: newer, known: KNOWN });
  // Refusing touched nothing: the newer row is still there and nothing was re-applied.
  assert.deepEqual(
    query<{ version: number }>(path, 'SELECT version FROM schema_migrations ORDER BY version').map((r) => r.version),
    [...SHIPPED.map((m) => m.version), newer],
  );
});

test('an unmigrated database is refused by assertSchemaCurrent() with SchemaOutdatedError', async (t) => {
  const { store, path } = freshStore(t);
  await assert.rejects(store.assertSchemaCurrent(), (err: unknown) => {
    assert.ok(err instanceof SchemaOutdatedError, String(err));
    assert.equal(err.code, 'SCHEMA_OUTDATED');
    assert.match(err.message, new RegExp(`schema is at version 0; this Spine needs ${KNOWN}`));
    assert.match(err.message, /spine migrate/);
    return true;
  });
  // Checking did not create or migrate anything.
  assert.deepEqual(await store.schemaStatus(), { current: 0, known: KNOWN });
  assert.deepEqual(query(path, `SELECT name FROM sqlite_master WHERE type = 'table'`), []);
});

test('a version missing below the highest applied one (layers numbered in parallel) is applied, not skipped', async (t) => {
  const { store, path } = freshStore(t);
  assert.ok(SHIPPED.length >= 3, 'needs a migration between the first and the last');
  const skipped = SHIPPED[SHIPPED.length - 2]!;
  const before = SHIPPED[SHIPPED.length - 3]!;
  // A database that was migrated by a build which held the last number but not this one.
  const db = new DatabaseSync(path);
  db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
  for (const m of SHIPPED.filter((x) => x !== skipped)) {
    db.exec(readFileSync(join(MIGRATIONS_DIR, `${String(m.version).padStart(4, '0')}_${m.name}.sql`), 'utf8'));
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, 1);
  }
  db.close();

  // It reads as the last version every earlier one is applied up to, and is refused until migrated.
  assert.deepEqual(await store.schemaStatus(), { current: before.version, known: KNOWN });
  await assert.rejects(store.assertSchemaCurrent(), SchemaOutdatedError);
  assert.deepEqual(await store.migrate(), { applied: [skipped.version], version: KNOWN });
  assert.deepEqual(await store.schemaStatus(), { current: KNOWN, known: KNOWN });
  await store.assertSchemaCurrent();
  assert.deepEqual(
    query<{ version: number }>(path, 'SELECT version FROM schema_migrations ORDER BY version').map((r) => r.version),
    SHIPPED.map((m) => m.version),
  );
});
