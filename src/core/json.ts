import type { Json } from './types.ts';

/** Parses a JSON column; columns are written by us, so a failure is a store corruption. */
export function parseJson<T = Json>(text: string | null | undefined): T | null {
  if (text === null || text === undefined) return null;
  return JSON.parse(text) as T;
}

export function toJson(value: unknown): string {
  return JSON.stringify(value ?? null);
}
