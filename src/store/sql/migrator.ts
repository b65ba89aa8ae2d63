import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SchemaOutdatedError, SchemaTooNewError } from '../../core/errors.ts';
import type { SchemaStatus } from '../store.ts';
import type { SqlBackend } from './backend.ts';
import type { Migration } from './executor.ts';

/** Loads `NNNN_name.sql` files from a folder, in version order. */
export function loadMigrations(dir: string): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!m) continue;
    out.push({ version: Number(m[1]), name: m[2]!, sql: readFileSync(join(dir, file), 'utf8') });
  }
  // Versions are unique and increasing; a gap is allowed, since layers built in parallel hold pre-assigned numbers.
  out.forEach((mig, i) => {
    const prev = i === 0 ? 0 : out[i - 1]!.version;
    if (mig.version <= prev) throw new Error(`migrations in ${dir} are not numbered in increasing order (found ${mig.version} after ${prev})`);
  });
  return out;
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at BIGINT NOT NULL
)`;

/**
 * `current` is the version up to which every known migration is applied. Layers built in
 * parallel hold pre-assigned numbers, so a database can hold 11 without 5: it then reads
 * as 4, and `migrate` applies 5 rather than skipping every version below the highest.
 */
export async function schemaStatus(backend: SqlBackend): Promise<SchemaStatus> {
  const known = backend.migrations.at(-1)?.version ?? 0;
  const applied = await appliedVersions(backend);
  const highest = Math.max(0, ...applied);
  if (highest > known) return { current: highest, known };
  const firstMissing = backend.migrations.findIndex((m) => !applied.has(m.version));
  return { current: firstMissing === -1 ? highest : (backend.migrations[firstMissing - 1]?.version ?? 0), known };
}

async function appliedVersions(backend: SqlBackend): Promise<Set<number>> {
  try {
    const rows = await backend.read.all<{ version: number | string }>('SELECT version FROM schema_migrations');
    return new Set(rows.map((r) => Number(r.version)));
  } catch (err) {
    // No schema_migrations table yet: a fresh database. Anything else (the database is
    // unreachable) must not pass for "nothing applied", or migrate would try to apply everything.
    if (isMissingTable(err)) return new Set();
    throw err;
  }
}

/** SQLite says "no such table"; PostgreSQL raises SQLSTATE 42P01 (undefined_table). */
function isMissingTable(err: unknown): boolean {
  if ((err as { code?: unknown } | null)?.code === '42P01') return true;
  return err instanceof Error && /no such table/i.test(err.message);
}

/**
 * Applies pending migrations, each in its own transaction that also records its
 * version, so a crash leaves the schema at a whole version. Refuses a database
 * whose schema is newer than this build knows.
 */
export async function migrate(backend: SqlBackend, now: number): Promise<{ applied: number[]; version: number }> {
  // The common case — already current — is a read: many processes starting at once take no write lock.
  const first = await schemaStatus(backend);
  if (first.current > first.known) throw new SchemaTooNewError(first.current, first.known);
  if (first.current === first.known) return { applied: [], version: first.known };
  return backend.withMigrationLock(async () => {
    await backend.transaction((tx) => tx.exec(CREATE_TABLE));
    const { current, known } = await schemaStatus(backend);
    if (current > known) throw new SchemaTooNewError(current, known);
    // Every missing version, not only those above the highest: see schemaStatus.
    const before = await appliedVersions(backend);
    const applied: number[] = [];
    for (const mig of backend.migrations.filter((m) => !before.has(m.version))) {
      const done = await backend.transaction(async (tx) => {
        // Re-checked inside the write transaction: another process may have applied it meanwhile.
        if (await tx.get('SELECT 1 AS one FROM schema_migrations WHERE version = ?', [mig.version])) return false;
        await tx.exec(mig.sql);
        await tx.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [mig.version, mig.name, now]);
        return true;
      });
      if (done) applied.push(mig.version);
    }
    return { applied, version: known };
  });
}

export async function assertSchemaCurrent(backend: SqlBackend): Promise<void> {
  const { current, known } = await schemaStatus(backend);
  if (current > known) throw new SchemaTooNewError(current, known);
  if (current < known) throw new SchemaOutdatedError(current, known);
}
