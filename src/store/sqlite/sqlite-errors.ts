import { StoreUnavailableError } from '../../core/errors.ts';

/**
 * SQLite result codes (the primary code, `errcode & 0xff`) that mean "the database
 * cannot be used now", not "the statement is wrong": the disk is full, the file or
 * its directory is read-only, an I/O error, it cannot be opened, another process has
 * held the write lock past busy_timeout, the file is damaged. Syntax errors and
 * constraint violations are bugs or bad input and stay what they are.
 */
const FAULTS: Record<number, string> = {
  5: 'SQLITE_BUSY',
  8: 'SQLITE_READONLY',
  10: 'SQLITE_IOERR',
  11: 'SQLITE_CORRUPT',
  13: 'SQLITE_FULL',
  14: 'SQLITE_CANTOPEN',
  15: 'SQLITE_PROTOCOL',
  22: 'SQLITE_NOLFS',
  26: 'SQLITE_NOTADB',
};

/** File-system errors while creating the database's folder or file. */
const FS_FAULTS = new Set(['ENOSPC', 'EROFS', 'EIO', 'EACCES', 'EPERM', 'EDQUOT']);

/** A store fault as StoreUnavailableError (retryable, 503, exit 5); null for anything else. */
export function sqliteFault(err: unknown): StoreUnavailableError | null {
  if (err instanceof StoreUnavailableError) return err;
  const e = err as { errcode?: unknown; code?: unknown; message?: unknown } | null;
  if (typeof e?.errcode === 'number') {
    const name = FAULTS[e.errcode & 0xff];
    return name === undefined ? null : new StoreUnavailableError(`SQLite: ${String(e.message)} (${name})`, err);
  }
  if (typeof e?.code === 'string' && FS_FAULTS.has(e.code)) return new StoreUnavailableError(`SQLite: ${String(e.message)}`, err);
  return null;
}
