import { createHash } from 'node:crypto';

/** sha256 (hex, first 32 chars) of a value's JSON form; audit events carry digests, not payloads. */
export function digest(value: unknown): string {
  const text = value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value);
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}
