// The PostgreSQL migrations mirror the SQLite ones: the same numbered files, and after
// each one the same tables, columns (nullability, defaults, type family), indexes and
// unique keys. A column added to one dialect and not the other fails here. The text
// comparison needs no database; the applied comparison runs on PostgreSQL.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PG_TEST_URL, pgAdmin } from './helpers.ts';
import { PG_ONLY, dropSchema, newSchema } from './fixtures/pg-env.ts';

const MIGRATIONS = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'store', 'migrations');

function files(dialect: 'sqlite' | 'postgres'): Array<{ file: string; sql: string }> {
  return readdirSync(join(MIGRATIONS, dialect))
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => ({ file, sql: readFileSync(join(MIGRATIONS, dialect, file), 'utf8') }));
}

/**
 * Full-text search structures are dialect-specific by nature (an FTS5 virtual table and
 * its shadow tables on SQLite, a GIN expression index on PostgreSQL): named `*_fts*`,
 * they are left out of the comparison; memory's conformance suite checks both search alike.
 */
const FULL_TEXT = /(^|_)fts(_|$)/;

/** What a migration file declares, read from its text: `table.column` and index names, in order. */
function declared(sqlText: string): string[] {
  const text = sqlText.replace(/--[^\n]*/g, '');
  const out: string[] = [];
  for (const m of text.matchAll(/CREATE TABLE (?:IF NOT EXISTS )?(\w+) \(([\s\S]*?)\n\);/g)) {
    for (const line of m[2]!.split('\n')) {
      const col = /^\s*(\w+)\s+[A-Z]/.exec(line);
      if (col && !['PRIMARY', 'UNIQUE', 'FOREIGN', 'CHECK', 'CONSTRAINT'].includes(col[1]!)) out.push(`${m[1]}.${col[1]}`);
    }
  }
  for (const m of text.matchAll(/ALTER TABLE (\w+) ADD COLUMN (\w+)/g)) out.push(`${m[1]}.${m[2]}`);
  for (const m of text.matchAll(/CREATE (?:UNIQUE )?INDEX (?:IF NOT EXISTS )?(\w+) ON (\w+)/g)) if (!FULL_TEXT.test(m[1]!)) out.push(`index ${m[1]} on ${m[2]}`);
  return out;
}

describe('PostgreSQL migrations mirror SQLite (text)', () => {
  it('the same numbered files, each declaring the same tables, columns and indexes', () => {
    const lite = files('sqlite');
    const pg = files('postgres');
    assert.deepEqual(
      pg.map((f) => f.file),
      lite.map((f) => f.file),
      'one PostgreSQL file per SQLite file, with the same number and name',
    );
    for (let i = 0; i < lite.length; i++) {
      const a = declared(lite[i]!.sql);
      const b = declared(pg[i]!.sql);
      assert.ok(a.length > 0, `${lite[i]!.file} declares something`);
      assert.deepEqual(b, a, `${pg[i]!.file} declares what ../sqlite/${lite[i]!.file} declares`);
    }
  });
});

interface Column {
  name: string;
  type: 'integer' | 'text' | 'real';
  notNull: boolean;
  default: string | null;
}
interface Shape {
  columns: Record<string, Column[]>;
  /** `table: index name (columns)[ partial]`, sorted. */
  indexes: string[];
  /** `table (columns)` of each UNIQUE key, sorted. */
  uniques: string[];
}

const normDefault = (d: string | null): string | null => (d === null ? null : d.replace(/::[a-z ]+$/, '').trim());
const normCols = (c: string): string => c.replace(/\s+/g, '').toLowerCase();

function sqliteShape(db: DatabaseSync): Shape {
  const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).all() as Array<{ name: string }>)
    .map((r) => r.name)
    .filter((n) => !FULL_TEXT.test(n));
  const columns: Shape['columns'] = {};
  const uniques: string[] = [];
  for (const t of tables) {
    const info = db.prepare(`PRAGMA table_info(${t})`).all() as Array<{ name: string; type: string; notnull: number; dflt_value: string | null; pk: number }>;
    columns[t] = info.map((c) => ({
      name: c.name,
      type: c.type === 'INTEGER' ? 'integer' : c.type === 'REAL' ? 'real' : 'text',
      notNull: c.notnull === 1 || c.pk > 0,
      default: normDefault(c.dflt_value),
    }));
    for (const ix of db.prepare(`PRAGMA index_list(${t})`).all() as Array<{ name: string; origin: string }>) {
      if (ix.origin !== 'u') continue;
      const cols = (db.prepare(`PRAGMA index_info(${ix.name})`).all() as Array<{ name: string }>).map((c) => c.name).join(',');
      uniques.push(`${t} (${cols})`);
    }
  }
  const indexes = (db.prepare(`SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL`).all() as Array<{ name: string; tbl_name: string; sql: string }>).map((r) => {
    const m = /ON \w+ \(([^)]*)\)(\s+WHERE\s+)?/i.exec(r.sql)!;
    return `${r.tbl_name}: ${r.name} (${normCols(m[1]!)})${m[2] ? ' partial' : ''}`;
  });
  return { columns, indexes: indexes.sort(), uniques: uniques.sort() };
}

async function pgShape(schema: string): Promise<Shape> {
  return pgAdmin(PG_TEST_URL, async (c) => {
    const cols = (
      await c.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string; column_default: string | null }>(
        `SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns WHERE table_schema = $1 ORDER BY table_name, ordinal_position`,
        [schema],
      )
    ).rows;
    const columns: Shape['columns'] = {};
    for (const r of cols) {
      (columns[r.table_name] ??= []).push({
        name: r.column_name,
        type: r.data_type === 'bigint' || r.data_type === 'integer' ? 'integer' : r.data_type === 'double precision' ? 'real' : 'text',
        notNull: r.is_nullable === 'NO',
        default: normDefault(r.column_default),
      });
    }
    const ix = (
      await c.query<{ indexname: string; tablename: string; indexdef: string; constraint: string | null }>(
        `SELECT i.indexname, i.tablename, i.indexdef, con.contype AS constraint
         FROM pg_indexes i LEFT JOIN pg_constraint con ON con.conname = i.indexname AND con.connamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
         WHERE i.schemaname = $1`,
        [schema],
      )
    ).rows;
    const indexes: string[] = [];
    const uniques: string[] = [];
    for (const r of ix) {
      if (FULL_TEXT.test(r.indexname)) continue;
      const m = /USING btree \(([^)]*)\)( WHERE )?/.exec(r.indexdef)!;
      if (r.constraint === 'u') uniques.push(`${r.tablename} (${normCols(m[1]!)})`);
      else if (r.constraint !== 'p') indexes.push(`${r.tablename}: ${r.indexname} (${normCols(m[1]!)})${m[2] ? ' partial' : ''}`);
    }
    return { columns, indexes: indexes.sort(), uniques: uniques.sort() };
  });
}

describe('PostgreSQL migrations mirror SQLite (applied)', { skip: PG_ONLY }, () => {
  it('after each migration both databases have the same tables, columns, defaults, indexes and unique keys', async () => {
    const lite = files('sqlite');
    const pg = files('postgres');
    const db = new DatabaseSync(':memory:');
    const schema = newSchema();
    try {
      await pgAdmin(PG_TEST_URL, (c) => c.query(`CREATE SCHEMA "${schema}"`));
      for (let i = 0; i < lite.length; i++) {
        db.exec(lite[i]!.sql);
        await pgAdmin(PG_TEST_URL, (c) => c.query(pg[i]!.sql), schema);
        const a = sqliteShape(db);
        const b = await pgShape(schema);
        assert.deepEqual(Object.keys(b.columns).sort(), Object.keys(a.columns).sort(), `tables after ${lite[i]!.file}`);
        for (const table of Object.keys(a.columns)) assert.deepEqual(b.columns[table], a.columns[table], `columns of ${table} after ${lite[i]!.file}`);
        assert.deepEqual(b.indexes, a.indexes, `indexes after ${lite[i]!.file}`);
        assert.deepEqual(b.uniques, a.uniques, `unique keys after ${lite[i]!.file}`);
      }
    } finally {
      db.close();
      await dropSchema(schema);
    }
  });
});
