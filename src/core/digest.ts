import { hash } from 'node:crypto';

/** sha256 (hex, first 32 chars) of a value's JSON form; audit events carry digests, not payloads. */
export function digest(value: unknown): string {
  const text = value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value);
  // One-shot hash(): no Hash object per call (a digest is taken for every turn's input and answer).
  return hash('sha256', text, 'hex').slice(0, 32);
}
