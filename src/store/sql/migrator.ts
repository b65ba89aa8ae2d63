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

export async function schemaStatus(backend: SqlBackend): Promise<SchemaStatus> {
  const known = backend.migrations.at(-1)?.version ?? 0;
  try {
    const row = await backend.read.get<{ v: number | string | null }>('SELECT MAX(version) AS v FROM schema_migrations');
    return { current: Number(row?.v ?? 0), known };
  } catch (err) {
    // No schema_migrations table yet: a fresh database. Anything else (the database is
    // unreachable) must not pass for "version 0", or migrate would try to apply everything.
    if (isMissingTable(err)) return { current: 0, known };
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
    const applied: number[] = [];
    for (const mig of backend.migrations.filter((m) => m.version > current)) {
      const done = await backend.transaction(async (tx) => {
        // Re-checked inside the write transaction: another process may have applied it meanwhile.
        const row = await tx.get<{ v: number | string | null }>('SELECT MAX(version) AS v FROM schema_migrations');
        if (Number(row?.v ?? 0) >= mig.version) return false;
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
