import { canonicalJson, chainHashOfText, GENESIS, streamOf } from '../../audit/chain.ts';
import { parseJson, toJson } from '../../core/json.ts';
import { MESH_EVENT_PREFIX } from '../../core/mesh.ts';
import { redactSecrets } from '../../core/redact.ts';
import type { AuditEntry, AuditEvent, AuditStore, ChainedEvent, ChainState, Checkpoint, LeafRow, StreamHead, VerificationRecord } from '../audit.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor, SqlParam } from './executor.ts';
import { slices, valuesOf } from './where.ts';
import { insertVerdicts } from './verdicts-sql.ts';

interface AuditRow {
  seq: number | string;
  at: number | string;
  kind: string;
  run_id: string | null;
  task_id: string | null;
  agent: string | null;
  actor: string | null;
  digest: string | null;
  data: string | null;
  stream?: string | null;
  stream_seq?: number | string | null;
  prev_hash?: string | null;
  hash?: string | null;
}

interface HeadRow {
  stream: string;
  stream_seq: number | string;
  hash: string;
}

interface CheckpointRow {
  n: number | string;
  from_seq: number | string;
  to_seq: number | string;
  count: number | string;
  root: string;
  prev_hash: string;
  at: number | string;
  key_id: string;
  signature: string;
  hash: string;
}

function toAuditEvent(r: AuditRow): AuditEvent {
  const ev: AuditEvent = {
    seq: Number(r.seq),
    at: Number(r.at),
    kind: r.kind,
    runId: r.run_id,
    taskId: r.task_id,
    agent: r.agent,
    actor: r.actor,
    digest: r.digest,
  };
  const data = parseJson(r.data);
  if (data !== null) ev.data = data;
  return ev;
}

function toChained(r: AuditRow): ChainedEvent {
  return {
    ...toAuditEvent(r),
    stream: r.stream ?? null,
    streamSeq: r.stream_seq === null || r.stream_seq === undefined ? null : Number(r.stream_seq),
    prevHash: r.prev_hash ?? null,
    hash: r.hash ?? null,
    dataText: r.data,
  };
}

const toHead = (r: HeadRow): StreamHead => ({ stream: r.stream, streamSeq: Number(r.stream_seq), hash: r.hash });

const toCheckpoint = (r: CheckpointRow): Checkpoint => ({
  n: Number(r.n),
  fromSeq: Number(r.from_seq),
  toSeq: Number(r.to_seq),
  count: Number(r.count),
  root: r.root,
  prevHash: r.prev_hash,
  at: Number(r.at),
  keyId: r.key_id,
  signature: r.signature,
  hash: r.hash,
});

const masked = (v: string | null | undefined): string | null => (v === undefined || v === null ? null : redactSecrets(v));

/** The statement moving `streams`' heads to their new state, and its parameters. */
function moveHeads(streams: readonly string[], state: ReadonlyMap<string, { n: number; hash: string }>): [string, SqlParam[]] {
  const params: SqlParam[] = [];
  for (const s of streams) {
    const h = state.get(s)!;
    params.push(s, h.n, h.hash);
  }
  return [
    `INSERT INTO audit_heads (stream, stream_seq, hash) VALUES ${valuesOf(streams.length, '(?, ?, ?)')} ON CONFLICT (stream) DO UPDATE SET stream_seq = excluded.stream_seq, hash = excluded.hash`,
    params,
  ];
}

/** The columns chainEvents gives each event's parameters for, in order. */
export const AUDIT_COLUMNS = 'at, kind, run_id, task_id, agent, actor, digest, data, stream, stream_seq, prev_hash, hash';

/**
 * Hashes events onto their streams' heads in `state`, moving each head as it goes, and
 * returns their parameters for AUDIT_COLUMNS, twelve per event. What the hash covers is
 * exactly what is stored: secrets masked first (the executor masks every parameter
 * too; masking twice changes nothing), data in canonical form. A stream missing from
 * `state` starts at the genesis hash.
 */
export function chainEvents(rows: ReadonlyArray<{ now: number; entry: AuditEntry; stream: string }>, state: Map<string, { n: number; hash: string }>): SqlParam[] {
  const params: SqlParam[] = [];
  for (const { now, entry: e, stream } of rows) {
    const prev = state.get(stream) ?? { n: 0, hash: GENESIS };
    const body = {
      stream: redactSecrets(stream),
      streamSeq: prev.n + 1,
      at: now,
      kind: redactSecrets(e.kind),
      runId: masked(e.runId),
      taskId: masked(e.taskId),
      agent: masked(e.agent),
      actor: masked(e.actor),
      digest: masked(e.digest),
    };
    const data = e.data === undefined ? null : redactSecrets(canonicalJson(e.data));
    const hash = chainHashOfText(body, data, prev.hash);
    state.set(stream, { n: body.streamSeq, hash });
    params.push(now, body.kind, body.runId, body.taskId, body.agent, body.actor, body.digest, data, body.stream, body.streamSeq, prev.hash, hash);
  }
  return params;
}

/**
 * PostgreSQL: an audit append as CTEs of a statement that is its own transaction
 * (commit-statement-sql.ts), written only if the CTE `guard` has rows; each event at
 * its own time (a statement may carry several callers' writes). `events` inserts
 * the chained events; `moved` moves each known head from where `heads` had it (a head
 * elsewhere is not moved: the caller checks `moved` counts `known` rows); `opened`
 * creates the heads of the streams the events open. `heads` is left at the new heads.
 */
export function auditCtes(
  appends: ReadonlyArray<{ now: number; entry: AuditEntry }>,
  heads: Map<string, { n: number; hash: string }>,
  guard: string,
): { ctes: string[]; params: SqlParam[]; known: number } {
  const rows = appends.map(({ now, entry }) => ({ now, entry, stream: streamOf(entry) }));
  const opened = new Set(rows.filter((r) => r.entry.opensStream).map((r) => r.stream));
  const known = [...new Set(rows.map((r) => r.stream))].filter((s) => !opened.has(s)).sort();
  const was = new Map(known.map((s) => [s, heads.get(s)!.n]));
  const chained = chainEvents(rows, heads);
  const params: SqlParam[] = [];
  rows.forEach((_, i) => params.push(i, ...chained.slice(i * 12, i * 12 + 12)));
  const ctes = [
    `events AS (INSERT INTO audit_events (${AUDIT_COLUMNS})
      SELECT ${AUDIT_COLUMNS} FROM (VALUES ${valuesOf(rows.length, '(CAST(? AS INTEGER), CAST(? AS BIGINT), ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS BIGINT), ?, ?)')})
        AS v(ord, ${AUDIT_COLUMNS})
      WHERE EXISTS (SELECT 1 FROM ${guard}) ORDER BY ord)`,
  ];
  if (known.length > 0) {
    ctes.push(`moved AS (UPDATE audit_heads h SET stream_seq = v.n, hash = v.hash
      FROM (VALUES ${valuesOf(known.length, '(?, CAST(? AS BIGINT), CAST(? AS BIGINT), ?)')}) AS v(stream, was, n, hash)
      WHERE h.stream = v.stream AND h.stream_seq = v.was AND EXISTS (SELECT 1 FROM ${guard}) RETURNING h.stream)`);
    for (const s of known) params.push(s, was.get(s)!, heads.get(s)!.n, heads.get(s)!.hash);
  }
  if (opened.size > 0) {
    const streams = [...opened].sort();
    ctes.push(`opened AS (INSERT INTO audit_heads (stream, stream_seq, hash)
      SELECT stream, n, hash FROM (VALUES ${valuesOf(streams.length, '(?, CAST(? AS BIGINT), ?)')}) AS v(stream, n, hash) WHERE EXISTS (SELECT 1 FROM ${guard}))`);
    for (const s of streams) params.push(s, heads.get(s)!.n, heads.get(s)!.hash);
  }
  return { ctes, params, known: known.length };
}

/** The events one unit appended, at its time. */
interface AuditAppend {
  now: number;
  entries: readonly AuditEntry[];
}

/**
 * Appends audit rows, each chained in its stream (src/audit/chain.ts). Inside a
 * transaction they are staged and written just before COMMIT together with those of
 * every unit sharing the transaction (StagedWrites); the rows still commit exactly
 * when the change they record does.
 */
export async function insertAudit(tx: SqlExecutor, now: number, entries: readonly AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  if (tx.staged) tx.staged.add(writeAudit, { now, entries });
  else await writeAudit(tx, [{ now, entries }]);
}

/**
 * Writes staged appends in order: the streams' heads are locked and read, the events
 * hashed and inserted with multi-row INSERTs, and the heads moved, in the caller's
 * transaction, so writers of one stream take turns while writers of different streams
 * never wait for each other.
 */
async function writeAudit(tx: SqlExecutor, appends: readonly AuditAppend[]): Promise<void> {
  const rows = appends.flatMap(({ now, entries }) => entries.map((entry) => ({ now, entry, stream: streamOf(entry) })));
  if (rows.length === 0) return;
  const distinct = [...new Set(rows.map((r) => r.stream))].sort();
  // An UPDATE (not SELECT … FOR UPDATE) locks the heads in both dialects; it also
  // holds the table lock the sealer waits on (DialectSql.auditSealLock). Locked in
  // sorted order, a chunk at a time; each list is padded to a power of two with its
  // last stream so that a batch of any size uses one of a few statements.
  // Heads the transaction already holds (PostgreSQL: locked by the fence, or by an
  // earlier append) are not locked again; the map follows every head this append moves.
  const state = tx.staged?.heads ?? new Map<string, { n: number; hash: string }>();
  // A stream this transaction opens starts at the genesis hash: nothing to lock or read.
  const opened = new Set(rows.filter((r) => r.entry.opensStream).map((r) => r.stream));
  for (const chunk of slices(distinct.filter((s) => !opened.has(s) && !state.has(s)))) {
    const padded = 2 ** Math.ceil(Math.log2(chunk.length));
    const params = [...chunk, ...Array<string>(padded - chunk.length).fill(chunk[chunk.length - 1]!)];
    const heads = await tx.all<HeadRow>(`UPDATE audit_heads SET stream_seq = stream_seq WHERE stream IN (${valuesOf(padded, '?')}) RETURNING stream, stream_seq, hash`, params);
    for (const h of heads) state.set(h.stream, { n: Number(h.stream_seq), hash: h.hash });
  }
  const eventChunks = [...slices(rows)];
  const headChunks = [...slices(distinct)];
  // PostgreSQL: the last insert and the heads' move are one statement (a data-modifying
  // WITH always runs to completion), one round trip fewer per append.
  const combined = tx.dialect === 'postgres' && headChunks.length === 1;
  for (const [i, chunk] of eventChunks.entries()) {
    const params = chainEvents(chunk, state);
    const insert = `INSERT INTO audit_events (${AUDIT_COLUMNS}) VALUES ${valuesOf(chunk.length, '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')}`;
    if (combined && i === eventChunks.length - 1) {
      const [move, moved] = moveHeads(headChunks[0]!, state);
      await tx.run(`WITH events AS (${insert}) ${move}`, [...params, ...moved]);
    } else await tx.run(insert, params);
  }
  // New streams (a task or run created in this transaction) get their head row; a
  // stream written by two transactions at once is impossible: the unique
  // (stream, stream_seq) index refuses the second.
  if (!combined) for (const chunk of headChunks) await tx.run(...moveHeads(chunk, state));
  // A gate's verdict is also a queryable record, in the same transaction as its event.
  for (const { now, entries } of appends) await insertVerdicts(tx, now, entries);
}

/** The mesh's event kinds, `mesh.` ≤ kind < `mesh/`, as the partial index audit_mesh_idx states them. */
const MESH_KINDS = `kind >= '${MESH_EVENT_PREFIX}' AND kind < '${MESH_EVENT_PREFIX.slice(0, -1)}/'`;

const PAGE_COLUMNS = 'seq, at, kind, run_id, task_id, agent, actor, digest, data, stream, stream_seq, prev_hash, hash';

export function sqlAuditStore(db: SqlBackend): AuditStore {
  return {
    async append(entries: AuditEntry[], now: number): Promise<void> {
      await db.transaction((tx) => insertAudit(tx, now, entries));
    },

    async list(filter: { runId?: string; afterSeq?: number; limit: number }): Promise<AuditEvent[]> {
      const rows = filter.runId
        ? await db.read.all<AuditRow>('SELECT * FROM audit_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?', [
            filter.runId,
            filter.afterSeq ?? 0,
            filter.limit,
          ])
        : await db.read.all<AuditRow>('SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?', [filter.afterSeq ?? 0, filter.limit]);
      return rows.map(toAuditEvent);
    },

    async meshEvents(q): Promise<AuditEvent[]> {
      // The literal range is the predicate of the partial index audit_mesh_idx (migration 0015).
      const before = q.beforeSeq ?? Number.MAX_SAFE_INTEGER;
      const rows = q.runId
        ? await db.read.all<AuditRow>(`SELECT * FROM audit_events WHERE run_id = ? AND ${MESH_KINDS} AND seq < ? ORDER BY seq DESC LIMIT ?`, [q.runId, before, q.limit])
        : await db.read.all<AuditRow>(`SELECT * FROM audit_events WHERE ${MESH_KINDS} AND seq < ? ORDER BY seq DESC LIMIT ?`, [before, q.limit]);
      return rows.map(toAuditEvent);
    },

    async latestSeq(): Promise<number> {
      const row = await db.read.get<{ seq: number | string | null }>('SELECT MAX(seq) AS seq FROM audit_events');
      return Number(row?.seq ?? 0);
    },

    async chainPage(q): Promise<ChainedEvent[]> {
      let rows: AuditRow[];
      if (q.stream !== undefined) {
        rows = await db.read.all<AuditRow>(`SELECT ${PAGE_COLUMNS} FROM audit_events WHERE stream = ? AND stream_seq > ? ORDER BY stream_seq LIMIT ?`, [
          q.stream,
          q.after?.stream === q.stream ? q.after.streamSeq : -1,
          q.limit,
        ]);
      } else if (q.after) {
        rows = await db.read.all<AuditRow>(`SELECT ${PAGE_COLUMNS} FROM audit_events WHERE (stream, stream_seq) > (?, ?) ORDER BY stream, stream_seq LIMIT ?`, [
          q.after.stream,
          q.after.streamSeq,
          q.limit,
        ]);
      } else {
        rows = await db.read.all<AuditRow>(`SELECT ${PAGE_COLUMNS} FROM audit_events WHERE stream IS NOT NULL ORDER BY stream, stream_seq LIMIT ?`, [q.limit]);
      }
      return rows.map(toChained);
    },

    async unchained(q): Promise<ChainedEvent[]> {
      const rows = await db.read.all<AuditRow>(
        `SELECT ${PAGE_COLUMNS} FROM audit_events WHERE (stream IS NULL OR stream_seq IS NULL OR hash IS NULL) AND seq > ? ORDER BY seq LIMIT ?`,
        [q.afterSeq, q.limit],
      );
      return rows.map(toChained);
    },

    async event(seq: number): Promise<ChainedEvent | null> {
      const row = await db.read.get<AuditRow>(`SELECT ${PAGE_COLUMNS} FROM audit_events WHERE seq = ?`, [seq]);
      return row ? toChained(row) : null;
    },

    async heads(): Promise<StreamHead[]> {
      return (await db.read.all<HeadRow>('SELECT stream, stream_seq, hash FROM audit_heads WHERE stream_seq > 0')).map(toHead);
    },

    async anchors(): Promise<StreamHead[]> {
      return (await db.read.all<HeadRow>('SELECT stream, stream_seq, hash FROM audit_anchors')).map(toHead);
    },

    async chainState(): Promise<ChainState> {
      const row = await db.read.get<{ legacy_until: number | string; pruned_until: number | string }>('SELECT legacy_until, pruned_until FROM audit_chain WHERE id = 1');
      return { legacyUntil: Number(row?.legacy_until ?? 0), prunedUntil: Number(row?.pruned_until ?? 0) };
    },

    async leaves(fromSeq: number, toSeq: number): Promise<LeafRow[]> {
      const rows = await db.read.all<{ seq: number | string; stream: string | null; stream_seq: number | string | null; hash: string | null }>(
        'SELECT seq, stream, stream_seq, hash FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY seq',
        [fromSeq, toSeq],
      );
      return rows.map((r) => ({ seq: Number(r.seq), stream: r.stream, streamSeq: r.stream_seq === null ? null : Number(r.stream_seq), hash: r.hash }));
    },

    async streamsOfRun(runId: string): Promise<string[]> {
      const rows = await db.read.all<{ id: string }>('SELECT id FROM tasks WHERE run_id = ? ORDER BY created_at, id', [runId]);
      return [`run:${runId}`, ...rows.map((r) => `task:${r.id}`)];
    },

    async sealHorizon(): Promise<number> {
      const lock = db.sql.auditSealLock;
      if (lock === null) return this.latestSeq();
      return db.transaction(async (tx) => {
        await tx.exec(lock);
        const row = await tx.get<{ seq: number | string | null }>('SELECT MAX(seq) AS seq FROM audit_events');
        return Number(row?.seq ?? 0);
      });
    },

    async checkpoints(): Promise<Checkpoint[]> {
      return (await db.read.all<CheckpointRow>('SELECT * FROM audit_checkpoints ORDER BY n')).map(toCheckpoint);
    },

    async addCheckpoint(cp: Checkpoint): Promise<boolean> {
      const changed = await db.transaction((tx) =>
        tx.run(
          `INSERT INTO audit_checkpoints (n, from_seq, to_seq, count, root, prev_hash, at, key_id, signature, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (n) DO NOTHING`,
          [cp.n, cp.fromSeq, cp.toSeq, cp.count, cp.root, cp.prevHash, cp.at, cp.keyId, cp.signature, cp.hash],
        ),
      );
      return changed === 1;
    },

    async prune(upTo: number): Promise<number> {
      return db.transaction(async (tx) => {
        // The newest event always stays: SQLite numbers a new row after the highest one left,
        // and an emptied table would hand out sealed seqs again.
        const newest = await tx.get<{ seq: number | string | null }>('SELECT MAX(seq) AS seq FROM audit_events');
        const toSeq = Math.min(upTo, Number(newest?.seq ?? 0) - 1);
        if (toSeq <= 0) return 0;
        // Each stream's last pruned event becomes its anchor: the chain resumes from it.
        await tx.run(
          `INSERT INTO audit_anchors (stream, stream_seq, hash)
             SELECT e.stream, e.stream_seq, e.hash FROM audit_events e
             WHERE e.seq <= ? AND e.stream IS NOT NULL
               AND e.stream_seq = (SELECT MAX(x.stream_seq) FROM audit_events x WHERE x.stream = e.stream AND x.seq <= ?)
           ON CONFLICT (stream) DO UPDATE SET stream_seq = excluded.stream_seq, hash = excluded.hash`,
          [toSeq, toSeq],
        );
        const n = await tx.run('DELETE FROM audit_events WHERE seq <= ?', [toSeq]);
        await tx.run('UPDATE audit_chain SET pruned_until = ? WHERE id = 1 AND pruned_until < ?', [toSeq, toSeq]);
        return n;
      });
    },

    async recordVerification(r: VerificationRecord): Promise<void> {
      await db.transaction((tx) =>
        tx.run('INSERT INTO audit_verifications (at, status, events, report) VALUES (?, ?, ?, ?)', [r.at, r.status, r.events, toJson(r.report)]),
      );
    },

    async lastVerification(): Promise<VerificationRecord | null> {
      const row = await db.read.get<{ at: number | string; status: string; events: number | string; report: string }>(
        'SELECT at, status, events, report FROM audit_verifications ORDER BY id DESC LIMIT 1',
      );
      return row ? { at: Number(row.at), status: row.status, events: Number(row.events), report: parseJson(row.report) ?? null } : null;
    },
  };
}
