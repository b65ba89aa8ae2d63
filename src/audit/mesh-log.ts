import { MESH_EVENTS, type MeshEvent } from '../core/mesh.ts';
import type { Json } from '../core/types.ts';
import type { AuditEvent } from '../store/audit.ts';
import type { Store } from '../store/store.ts';

/**
 * The mesh's traffic as the audit trail recorded it (`spine mesh log`, GET
 * /v1/mesh/calls, the dashboard's Mesh panel): each shadow record, newest first. A
 * `mesh.call` with no `mesh.reply` under the same call id is a call whose caller died
 * mid-call (docs/mesh.md).
 */
export interface MeshLogEntry {
  /** The audit event's seq: its place in the trail, and the page cursor. */
  id: string;
  seq: number;
  at: number;
  kind: MeshEvent;
  runId: string | null;
  taskId: string | null;
  /** The call's idempotency key: its place in the run (`run/task/turn/action`, nested calls deeper). */
  key: string | null;
  call: string | null;
  from: string | null;
  to: string | null;
  hop: number | null;
  /** mesh.reply: whether the callee's answer reached the caller. */
  ok: boolean | null;
  /** mesh.refused: why; mesh.reply: the error code when not ok. */
  reason: string | null;
  code: string | null;
  ms: number | null;
}

const str = (v: Json | undefined): string | null => (typeof v === 'string' ? v : null);
const num = (v: Json | undefined): number | null => (typeof v === 'number' ? v : null);

function entry(e: AuditEvent): MeshLogEntry {
  const d = (e.data && typeof e.data === 'object' && !Array.isArray(e.data) ? e.data : {}) as Record<string, Json>;
  return {
    id: String(e.seq),
    seq: e.seq,
    at: e.at,
    kind: e.kind as MeshEvent,
    runId: e.runId ?? null,
    taskId: e.taskId ?? null,
    key: str(d.key),
    call: str(d.call),
    from: str(d.from),
    to: str(d.to),
    hop: num(d.hop),
    ok: typeof d.ok === 'boolean' ? d.ok : null,
    reason: str(d.reason),
    code: str(d.code),
    ms: num(d.ms),
  };
}

export async function meshLog(store: Store, q: { runId?: string; before?: number; limit: number }): Promise<MeshLogEntry[]> {
  const events = await store.audit.meshEvents({ limit: q.limit, ...(q.runId ? { runId: q.runId } : {}), ...(q.before === undefined ? {} : { beforeSeq: q.before }) });
  return events.filter((e) => (MESH_EVENTS as readonly string[]).includes(e.kind)).map(entry);
}
