import { hash } from 'node:crypto';
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

/**
 * RFC 8785 (JCS) canonical JSON of a JSON value: object keys sorted by UTF-16 code
 * units, no whitespace, numbers and strings as ECMAScript's JSON.stringify writes
 * them. Hand-rolled because it runs once per event on every write and every verify;
 * test/audit-cli.test.ts checks exports against the `canonicalize` library. (JCS
 * refuses lone surrogates; here they are escaped as JSON.stringify escapes them.)
 */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return canonicalJson((v as { toJSON: () => unknown }).toJSON());
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) {
      if (i > 0) out += ',';
      const x: unknown = v[i];
      out += x === undefined ? 'null' : canonicalJson(x);
    }
    return `${out}]`;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const x = o[k];
    if (x === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += `${JSON.stringify(k)}:${canonicalJson(x)}`;
  }
  return `${out}}`;
}

const str = (v: string | null): string => (v === null ? 'null' : JSON.stringify(v));

/**
 * JCS of a ChainBody, its keys written in their sorted order at once. `dataJcs` is the
 * data's canonical JSON: the store keeps it in that form, so a verifier hashes the
 * stored text as it is (and any change to it, even a re-spacing, is an edit).
 */
export function canonicalBody(b: Omit<ChainBody, 'data'>, dataJcs: string): string {
  return `{"actor":${str(b.actor)},"agent":${str(b.agent)},"at":${b.at},"data":${dataJcs},"digest":${str(b.digest)},"kind":${str(b.kind)},"runId":${str(b.runId)},"stream":${str(b.stream)},"streamSeq":${b.streamSeq},"taskId":${str(b.taskId)}}`;
}

export function sha256Hex(text: string | Buffer): string {
  return hash('sha256', text, 'hex');
}

/** The event's hash, chained to the previous hash of its stream. */
export function chainHash(body: ChainBody, prevHash: string): string {
  return hash('sha256', canonicalBody(body, canonicalJson(body.data)) + prevHash, 'hex');
}

/** The same, from the data's stored canonical text (null: no data). */
export function chainHashOfText(body: Omit<ChainBody, 'data'>, dataJcs: string | null, prevHash: string): string {
  return hash('sha256', canonicalBody(body, dataJcs ?? 'null') + prevHash, 'hex');
}
