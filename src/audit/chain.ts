import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import type { AuditEntry } from '../store/audit.ts';
import type { Json } from '../core/types.ts';

/**
 * The hash chains of the audit trail (docs/audit.md). Every event belongs to one
 * stream — its task, its run, or a shared stream — and is addressed by
 * (stream, streamSeq). Its hash is
 *
 *     hash = SHA-256( JCS(body) ‖ prevHash )      (hex, UTF-8 bytes concatenated)
 *
 * where JCS is RFC 8785 canonical JSON and prevHash is the hash of the stream's
 * previous event (GENESIS for the first). Streams are independent, so writers of
 * different tasks never wait for each other.
 */

export const GENESIS = '0'.repeat(64);

/** The shared streams: events that belong to no task and no run. */
export const SHARED_STREAMS = ['intake', 'approvals', 'config', 'system'] as const;
export type SharedStream = (typeof SHARED_STREAMS)[number];

/** What an event's hash covers: everything but its global `seq` (the checkpoints' Merkle leaves bind that). */
export interface ChainBody {
  stream: string;
  streamSeq: number;
  at: number;
  kind: string;
  runId: string | null;
  taskId: string | null;
  agent: string | null;
  actor: string | null;
  digest: string | null;
  data: Json | null;
}

function sharedStreamOf(kind: string): SharedStream {
  const area = kind.slice(0, kind.indexOf('.'));
  if (area === 'envelope' || area === 'route' || area === 'schedule') return 'intake';
  if (area === 'approval' || area === 'grant' || area === 'operator') return 'approvals';
  if (area === 'config' || area === 'session' || area === 'token') return 'config';
  return 'system';
}

/** The stream an entry is chained in: explicit, else its task's, else its run's, else a shared one by kind. */
export function streamOf(e: AuditEntry): string {
  if (e.stream) return e.stream;
  if (e.taskId) return `task:${e.taskId}`;
  if (e.runId) return `run:${e.runId}`;
  return sharedStreamOf(e.kind);
}

export const runStream = (runId: string): string => `run:${runId}`;
export const taskStream = (taskId: string): string => `task:${taskId}`;

/** RFC 8785 canonical JSON; strings with lone surrogates (which JCS forbids) are made well-formed first. */
export function canonicalJson(value: unknown): string {
  try {
    return canonicalize(value) ?? 'null';
  } catch {
    return canonicalize(JSON.parse(JSON.stringify(value ?? null, (_k, v: unknown) => (typeof v === 'string' ? v.toWellFormed() : v)))) ?? 'null';
  }
}

export function sha256Hex(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The event's hash, chained to the previous hash of its stream. */
export function chainHash(body: ChainBody, prevHash: string): string {
  return createHash('sha256').update(canonicalJson(body)).update(prevHash).digest('hex');
}
