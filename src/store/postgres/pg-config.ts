import { userInfo } from 'node:os';
import { InvalidInputError } from '../../core/errors.ts';

/**
 * What a `postgres://` store URL says. Spine reads two query parameters itself and
 * leaves the rest (sslmode, application_name, …) to the driver:
 * - `schema=<name>`: every connection uses this schema (search_path); created by `spine migrate`.
 * - `pool=<n>`: most connections this process opens for commands (default 10), plus one
 *   for LISTEN when a worker waits for work.
 */
export interface PgConfig {
  /** The connection string passed to the driver (without Spine's own parameters). */
  connectionString: string;
  schema: string | null;
  poolSize: number;
  /** The URL's own `options` (server settings like `-c statement_timeout=5s`), merged with Spine's search_path. */
  serverOptions: string | null;
  /** The URL with its password masked, safe to print. */
  safeUrl: string;
}

export const DEFAULT_POOL_SIZE = 10;
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function parsePgUrl(url: string, overrides: { schema?: string; poolSize?: number } = {}): PgConfig {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidInputError('--db', `"${maskPassword(url)}" is not a valid postgres:// URL`);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new InvalidInputError('--db', `expected postgres:// or postgresql://, got "${parsed.protocol}"`);
  }
  const schema = overrides.schema ?? parsed.searchParams.get('schema');
  if (schema !== null && !SCHEMA_NAME.test(schema)) {
    throw new InvalidInputError('--db', `schema "${schema}" must be a plain identifier (letters, digits, _; at most 63 characters)`);
  }
  const poolParam = parsed.searchParams.get('pool');
  let poolSize = overrides.poolSize ?? DEFAULT_POOL_SIZE;
  if (overrides.poolSize === undefined && poolParam !== null) {
    poolSize = Number(poolParam);
    if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 1000) {
      throw new InvalidInputError('--db', `pool=${poolParam} must be a whole number of connections from 1 to 1000`);
    }
  }
  // node-postgres takes the user from $PGUSER, then $USER; with neither (cron, systemd,
  // a bare container) it sends none and the server refuses. libpq uses the OS account.
  if (!parsed.username && !process.env.PGUSER && !process.env.USER) parsed.username = osUser();
  const serverOptions = parsed.searchParams.get('options');
  parsed.searchParams.delete('schema');
  parsed.searchParams.delete('pool');
  parsed.searchParams.delete('options');
  const connectionString = parsed.toString();
  const safe = new URL(connectionString);
  if (safe.password) safe.password = '***';
  if (schema !== null) safe.searchParams.set('schema', schema);
  return { connectionString, schema, poolSize, serverOptions, safeUrl: safe.toString() };
}

function maskPassword(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
}

/** A double-quoted identifier (names are validated to plain identifiers first). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'postgres';
  }
}
