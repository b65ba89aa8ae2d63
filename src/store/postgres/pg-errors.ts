import { StoreUnavailableError } from '../../core/errors.ts';

export { StoreUnavailableError };

/** SQLSTATE classes and driver codes that mean "the connection is gone", not "the statement is wrong". */
const CONNECTION_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01', // admin_shutdown (pg_terminate_backend, server stop)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up / shutting down)
  '53300', // too_many_connections
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
]);

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The connection (or the server) went away: the statement did not run, or its outcome is unknown. */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true;
  const code = codeOf(err);
  if (code !== undefined && CONNECTION_CODES.has(code)) return true;
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|connection error and is not queryable|Client was closed and is not queryable|terminating connection|timeout exceeded when trying to connect|the database system is (starting up|shutting down)/i.test(
    message,
  );
}

/**
 * The server cannot write (or read) now, though the connection is fine: disk full or
 * out of resources (class 53), an I/O or system error (class 58), a read-only server
 * or transaction (a hot standby; default_transaction_read_only). Not retried here: the
 * caller gets StoreUnavailableError (retryable) and tries again later.
 */
export function isStoreFault(err: unknown): boolean {
  const code = codeOf(err);
  // too_many_connections (53300) is a connection failure: retried with backoff like one.
  if (code === undefined || code.length !== 5 || CONNECTION_CODES.has(code)) return false;
  return code.startsWith('53') || code.startsWith('58') || code === '25006' /* read_only_sql_transaction */;
}

/** A transaction lost a race PostgreSQL resolves by aborting one side; running it again is the fix. */
export function isTransientConflict(err: unknown): boolean {
  const code = codeOf(err);
  return code === '40001' /* serialization_failure */ || code === '40P01' /* deadlock_detected */;
}

/**
 * "prepared statement … does not exist" (26000): the server connection has no statement
 * by a name this process prepared. A pooler that renames prepared statements (PgBouncer
 * ≥ 1.21 in transaction mode) hides them from an `EXECUTE` by name.
 */
export function isUnknownStatement(err: unknown): boolean {
  return codeOf(err) === '26000';
}

/**
 * A prepared statement that cannot run as prepared: its result columns changed under it
 * (a migration ran meanwhile), or the connection has none by its name. Prepared again
 * under new names (StatementNames.reset), the statement runs.
 */
export function mustPrepareAgain(err: unknown): boolean {
  return isUnknownStatement(err) || (codeOf(err) === '0A000' && /cached plan must not change result type/.test(err instanceof Error ? err.message : ''));
}

/** "relation does not exist": a fresh database without the table. */
export function isUndefinedTable(err: unknown): boolean {
  return codeOf(err) === '42P01';
}
