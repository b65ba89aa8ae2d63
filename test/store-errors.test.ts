// Which database errors are store faults (StoreUnavailableError: retryable, 503, exit 5)
// and which stay what they are (a statement bug, a constraint violation). The faults a
// test can cause on a live store are in conformance/store-faults.test.ts; the ones no
// test can cause on demand (an I/O error, a damaged file) are classified here.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { StoreUnavailableError } from '../src/core/errors.ts';
import { openStore } from '../src/runtime/open-store.ts';
import { isStoreFault } from '../src/store/postgres/pg-errors.ts';
import { sqliteFault } from '../src/store/sqlite/sqlite-errors.ts';

/** An error as node:sqlite throws it (errcode: the extended result code). */
const sqliteError = (errcode: number, message: string) => Object.assign(new Error(message), { code: 'ERR_SQLITE_ERROR', errcode, errstr: message });

describe('SQLite errors', () => {
  it('disk full, read-only, I/O errors (every extended code), cannot open, busy and a damaged file are store faults', () => {
    const faults: Array<[number, string]> = [
      [13, 'database or disk is full'],
      [8, 'attempt to write a readonly database'],
      [1032, 'attempt to write a readonly database'], // SQLITE_READONLY_DBMOVED
      [10, 'disk I/O error'],
      [778, 'disk I/O error'], // SQLITE_IOERR_WRITE
      [1034, 'disk I/O error'], // SQLITE_IOERR_FSYNC
      [5386, 'disk I/O error'], // SQLITE_IOERR_SHMMAP: any IOERR_* is one
      [14, 'unable to open database file'],
      [5, 'database is locked'],
      [11, 'database disk image is malformed'],
    ];
    for (const [errcode, message] of faults) {
      const fault = sqliteFault(sqliteError(errcode, message));
      assert.ok(fault instanceof StoreUnavailableError, `errcode ${errcode} is a store fault`);
      assert.equal(fault.code, 'STORE_UNAVAILABLE');
      assert.equal(fault.retryable, true);
      assert.ok(fault.message.includes(message), fault.message);
    }
  });

  it('syntax errors and constraint violations are not store faults', () => {
    for (const [errcode, message] of [
      [1, 'near "SELEC": syntax error'],
      [19, 'constraint failed'],
      [1555, 'UNIQUE constraint failed: t.id'], // SQLITE_CONSTRAINT_PRIMARYKEY
      [2067, 'UNIQUE constraint failed: t.k'], // SQLITE_CONSTRAINT_UNIQUE
      [20, 'datatype mismatch'],
    ] as const) {
      assert.equal(sqliteFault(sqliteError(errcode, message)), null, `errcode ${errcode}`);
    }
    assert.equal(sqliteFault(new Error('a bug')), null);
    assert.equal(sqliteFault(new TypeError('x is undefined')), null);
  });

  it('a store that cannot be opened is STORE_UNAVAILABLE, not a crash', () => {
    const dir = mkdtempSync(join(tmpdir(), 'spine-open-'));
    try {
      // The path is a folder: SQLite cannot open it as a database file (SQLITE_CANTOPEN).
      assert.throws(() => openStore({ url: `sqlite:${dir}` }), (err: unknown) => err instanceof StoreUnavailableError && /SQLITE_CANTOPEN/.test(err.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('PostgreSQL errors', () => {
  it('disk full, out of resources, I/O errors and a read-only server are store faults; statement errors are not', () => {
    const pgError = (code: string) => Object.assign(new Error(`pg ${code}`), { code });
    for (const code of ['53100', '53200', '53000', '58030', '58P01', '25006']) assert.equal(isStoreFault(pgError(code)), true, code);
    for (const code of ['23505', '42601', '42P01', '40001', '22P02', 'ECONNRESET']) assert.equal(isStoreFault(pgError(code)), false, code);
    // too_many_connections is a connection failure, retried with backoff before it becomes STORE_UNAVAILABLE.
    assert.equal(isStoreFault(pgError('53300')), false);
    assert.equal(isStoreFault(new Error('no code')), false);
  });
});
