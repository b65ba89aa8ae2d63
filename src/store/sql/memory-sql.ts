import { InvalidStateError, NotFoundError, VectorsUnavailableError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { stableJson, parseJson, toJson } from '../../core/json.ts';
import { mergeJson, searchTerms, type ConflictStrategy, type FactTrust, type ScopeMatch } from '../../core/memory.ts';
import type { Json } from '../../core/types.ts';
import type { AuditEntry } from '../audit.ts';
import type { ConflictState, FactVersion, FactWrite, ForgetSelector, MemoryConflict, MemoryEffect, MemoryStore, SearchHit, WriteOutcome, WrittenBy } from '../memory.ts';
import type { StoreCapabilities } from '../store.ts';
import { insertAudit } from './audit-sql.ts';
import { insertApproval } from './approvals-sql.ts';
import type { SqlBackend } from './backend.ts';
import type { SqlExecutor, SqlParam } from './executor.ts';
import { toEffect, type EffectRow } from './rows.ts';
import { placeholders } from './where.ts';
import { writeLedgerEntry } from '../../memory/outcome.ts';

/**
 * Shared memory's SQL (store/memory.ts). A write is a compare-and-set on the fact's
 * head row (`UPDATE … WHERE version = ?`, atomic on both backends), then a new version
 * row; the previous version gets its valid_to. Reads take the reader's resolved grants
 * and turn them into the WHERE clause: a fact outside them is never read.
 */

interface VersionRow {
  id: string;
  seq: number | string | null;
  tenant: string;
  scope: string;
  key: string;
  version: number | string;
  supersedes: number | string | null;
  value: string;
  text: string | null;
  valid_from: number | string;
  valid_to: number | string | null;
  written_agent: string | null;
  written_run: string | null;
  written_task: string | null;
  written_turn: number | string | null;
  written_actor: string;
  sources: string;
  trust: string;
  expires_at: number | string | null;
  tombstone: number | string;
}

interface ConflictRow {
  id: string;
  tenant: string;
  scope: string;
  key: string;
  expected_version: number | string;
  current_version: number | string;
  proposed: string;
  proposed_text: string | null;
  strategy: string;
  state: string;
  resolved_version: number | string | null;
  resolved_by: string | null;
  written_by: string;
  created_at: number | string;
  resolved_at: number | string | null;
  approval_id: string | null;
  merge_run: string | null;
}

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

export function toFact(r: VersionRow): FactVersion {
  return {
    id: r.id,
    tenant: r.tenant,
    scope: r.scope,
    key: r.key,
    version: Number(r.version),
    supersedes: num(r.supersedes),
    value: parseJson(r.value),
    text: r.text,
    validFrom: Number(r.valid_from),
    validTo: num(r.valid_to),
    writtenBy: { agent: r.written_agent, run: r.written_run, task: r.written_task, turn: num(r.written_turn), actor: r.written_actor },
    sources: parseJson<string[]>(r.sources) ?? [],
    trust: r.trust as FactTrust,
    expiresAt: num(r.expires_at),
    tombstone: Number(r.tombstone) === 1,
  };
}

function toConflict(r: ConflictRow): MemoryConflict {
  return {
    id: r.id,
    tenant: r.tenant,
    scope: r.scope,
    key: r.key,
    expectedVersion: Number(r.expected_version),
    currentVersion: Number(r.current_version),
    proposed: parseJson(r.proposed),
    proposedText: r.proposed_text,
    strategy: r.strategy as ConflictStrategy,
    state: r.state as ConflictState,
    resolvedVersion: num(r.resolved_version),
    resolvedBy: r.resolved_by,
    writtenBy: parseJson<WrittenBy>(r.written_by)!,
    createdAt: Number(r.created_at),
    resolvedAt: num(r.resolved_at),
    approvalId: r.approval_id,
    mergeRun: r.merge_run,
  };
}

/** The read grants as a WHERE condition on `scope` (never true for an empty list). */
export function grantCondition(grants: readonly ScopeMatch[], column = 'scope'): { sql: string; params: SqlParam[] } {
  if (grants.some((g) => 'all' in g)) return { sql: '1 = 1', params: [] };
  const parts: string[] = [];
  const params: SqlParam[] = [];
  const exact = grants.flatMap((g) => ('exact' in g ? [g.exact] : []));
  if (exact.length) {
    parts.push(`${column} IN (${placeholders(exact.length)})`);
    params.push(...exact);
  }
  for (const g of grants) {
    if (!('tree' in g)) continue;
    // A tree is the scope itself and every path below it (compared byte for byte: no LIKE, whose case rules differ).
    parts.push(`(${column} = ? OR substr(${column}, 1, ?) = ?)`);
    params.push(g.tree, g.tree.length + 1, `${g.tree}/`);
  }
  return parts.length ? { sql: `(${parts.join(' OR ')})`, params } : { sql: '1 = 0', params: [] };
}

/** Live at `at`: the version valid then, not a tombstone, not expired. */
function liveAt(at: number, alias = 'v'): { sql: string; params: SqlParam[] } {
  return {
    sql: `${alias}.valid_from <= ? AND (${alias}.valid_to IS NULL OR ${alias}.valid_to > ?) AND ${alias}.tombstone = 0 AND (${alias}.expires_at IS NULL OR ${alias}.expires_at > ?)`,
    params: [at, at, at],
  };
}

function isLive(f: FactVersion | null, now: number): f is FactVersion {
  return f !== null && !f.tombstone && (f.expiresAt === null || f.expiresAt > now);
}

async function currentVersion(tx: SqlExecutor, tenant: string, scope: string, key: string): Promise<FactVersion | null> {
  const row = await tx.get<VersionRow>('SELECT * FROM memory_versions WHERE tenant = ? AND scope = ? AND key = ? AND valid_to IS NULL', [tenant, scope, key]);
  return row ? toFact(row) : null;
}

interface NewVersion {
  tenant: string;
  scope: string;
  key: string;
  value: Json;
  text: string | null;
  writtenBy: WrittenBy;
  sources: string[];
  trust: FactTrust;
  expiresAt: number | null;
  tombstone: boolean;
  embed?: boolean;
}

/**
 * Appends the next version of a fact if its head is still at `head` (null: no head
 * yet). Returns null when another writer moved the head first.
 */
async function appendVersion(tx: SqlExecutor, caps: StoreCapabilities, v: NewVersion, head: number | null, prev: FactVersion | null, now: number): Promise<FactVersion | null> {
  const next = (head ?? 0) + 1;
  const moved =
    head === null
      ? await tx.run('INSERT INTO memory_facts (tenant, scope, key, version, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, scope, key) DO NOTHING', [v.tenant, v.scope, v.key, next, now])
      : await tx.run('UPDATE memory_facts SET version = ?, updated_at = ? WHERE tenant = ? AND scope = ? AND key = ? AND version = ?', [next, now, v.tenant, v.scope, v.key, head]);
  if (moved === 0) return null;
  if (prev) await tx.run('UPDATE memory_versions SET valid_to = ? WHERE id = ?', [now, prev.id]);
  const fts = caps.fullText === 'fts5' && v.text !== null && !v.tombstone;
  // FTS5 rows are keyed by an integer: numbered here, under SQLite's one write lock.
  const seq = fts ? Number((await tx.get<{ s: number | string }>('SELECT COALESCE(MAX(seq), 0) + 1 AS s FROM memory_versions'))!.s) : null;
  const row = await tx.get<VersionRow>(
    `INSERT INTO memory_versions (id, seq, tenant, scope, key, version, supersedes, value, text, valid_from, valid_to, written_agent, written_run, written_task, written_turn, written_actor, sources, trust, expires_at, tombstone)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
    [
      newId('fact'),
      seq,
      v.tenant,
      v.scope,
      v.key,
      next,
      prev ? prev.version : null,
      toJson(v.value),
      v.text,
      now,
      v.writtenBy.agent,
      v.writtenBy.run,
      v.writtenBy.task,
      v.writtenBy.turn,
      v.writtenBy.actor,
      toJson(v.sources),
      v.trust,
      v.expiresAt,
      v.tombstone ? 1 : 0,
    ],
  );
  if (fts) await tx.run('INSERT INTO memory_fts (rowid, text) VALUES (?, ?)', [seq, v.text]);
  for (const s of new Set(v.sources)) await tx.run('INSERT INTO memory_sources (version_id, source) VALUES (?, ?) ON CONFLICT DO NOTHING', [row!.id, s]);
  if (v.embed && v.text !== null && !v.tombstone) await tx.run('INSERT INTO memory_embed_queue (version_id, created_at) VALUES (?, ?)', [row!.id, now]);
  return toFact(row!);
}

async function headVersion(tx: SqlExecutor, tenant: string, scope: string, key: string): Promise<number | null> {
  const row = await tx.get<{ version: number | string }>('SELECT version FROM memory_facts WHERE tenant = ? AND scope = ? AND key = ?', [tenant, scope, key]);
  return row ? Number(row.version) : null;
}

async function insertConflict(tx: SqlExecutor, w: FactWrite, current: number, state: ConflictState, resolved: number | null, now: number): Promise<MemoryConflict> {
  const row = await tx.get<ConflictRow>(
    `INSERT INTO memory_conflicts (id, tenant, scope, key, expected_version, current_version, proposed, proposed_text, strategy, state, resolved_version, resolved_by, written_by, created_at, resolved_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
    [
      newId('conflict'),
      w.tenant,
      w.scope,
      w.key,
      w.expectedVersion ?? 0,
      current,
      toJson(w.value),
      w.text ?? null,
      w.onConflict,
      state,
      resolved,
      resolved === null ? null : `strategy:${w.onConflict}`,
      toJson(w.writtenBy),
      now,
      resolved === null ? null : now,
    ],
  );
  return toConflict(row!);
}

/** One write inside an open transaction (the compare-and-set loop, conflicts, audit). */
async function writeInTx(tx: SqlExecutor, caps: StoreCapabilities, w: FactWrite, now: number, audit: AuditEntry[]): Promise<Exclude<WriteOutcome, { kind: 'replayed' }>> {
  const who = { runId: w.writtenBy.run, taskId: w.writtenBy.task, agent: w.writtenBy.agent, actor: w.writtenBy.actor };
  const text = w.text ?? null;
  for (;;) {
    const head = await headVersion(tx, w.tenant, w.scope, w.key);
    const prev = head === null ? null : await currentVersion(tx, w.tenant, w.scope, w.key);
    const live = isLive(prev, now) ? prev : null;
    const liveVersion = live ? live.version : 0;
    // Writing back what is already there (e.g. a fact the turn was handed, unchanged) appends nothing.
    if (live && stableJson(live.value) === stableJson(w.value) && live.text === text && (w.expectedVersion === undefined || w.expectedVersion === liveVersion)) {
      return { kind: 'unchanged', fact: live };
    }
    let value = w.value;
    let conflict: MemoryConflict | null = null;
    const lost = w.expectedVersion !== undefined && w.expectedVersion !== liveVersion;
    if (lost) {
      const strategy = w.onConflict;
      if (strategy === 'reject' || strategy === 'agent' || strategy === 'human') {
        const c = await insertConflict(tx, w, liveVersion, strategy === 'reject' ? 'rejected' : 'open', null, now);
        audit.push({ ...who, kind: 'memory.conflict', data: { conflict: c.id, scope: w.scope, key: w.key, expected: c.expectedVersion, current: liveVersion, strategy, state: c.state } });
        return { kind: 'conflict', conflict: c, current: live };
      }
      if (strategy === 'merge-json') value = mergeJson(live ? live.value : null, w.value) as Json;
    }
    const fact = await appendVersion(
      tx,
      caps,
      { tenant: w.tenant, scope: w.scope, key: w.key, value, text, writtenBy: w.writtenBy, sources: w.sources ?? [], trust: w.trust, expiresAt: w.expiresAt ?? null, tombstone: false, embed: w.embed === true },
      head,
      prev,
      now,
    );
    if (!fact) continue; // another writer moved the head between our read and our update: read again
    if (lost) {
      conflict = await insertConflict(tx, w, liveVersion, 'resolved', fact.version, now);
      audit.push({ ...who, kind: 'memory.conflict', data: { conflict: conflict.id, scope: w.scope, key: w.key, expected: conflict.expectedVersion, current: liveVersion, strategy: w.onConflict, state: 'resolved' } });
      audit.push({ ...who, kind: 'memory.resolved', data: { conflict: conflict.id, strategy: w.onConflict, by: `strategy:${w.onConflict}`, version: fact.version } });
    }
    audit.push({ ...who, kind: 'memory.written', data: { fact: fact.id, scope: w.scope, key: w.key, version: fact.version, trust: w.trust } });
    return { kind: 'written', fact, conflict };
  }
}

export function sqlMemoryStore(db: SqlBackend): MemoryStore {
  const caps = db.capabilities;
  // SQLite loads sqlite-vec on first use; a store that cannot is refused at start, so this throws only for a misuse.
  const needVectors = () => {
    const problem = caps.vectors === 'sqlite-vec' ? (db.enableVectors?.() ?? null) : caps.vectors === null ? 'no vector support' : null;
    if (problem) throw new VectorsUnavailableError(`SQLite: ${problem}`);
  };
  return {
    async write(w, now, opts = {}) {
      return db.transaction(async (tx): Promise<WriteOutcome> => {
        const effect: MemoryEffect | undefined = opts.effect;
        if (effect) {
          const done = await tx.get<EffectRow>('SELECT * FROM effects WHERE key = ?', [effect.key]);
          if (done && done.state !== 'started') return { kind: 'replayed', effect: toEffect(done) };
        }
        const audit: AuditEntry[] = [...(opts.audit ?? [])];
        const outcome = await writeInTx(tx, caps, w, now, audit);
        if (effect) {
          const entry = writeLedgerEntry(outcome);
          await tx.run(
            `INSERT INTO effects (key, run_id, task_id, turn, action, tool, input_digest, state, attempts, result, error, started_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)`,
            [
              effect.key,
              effect.runId,
              effect.taskId,
              effect.turn,
              effect.action,
              effect.tool,
              effect.inputDigest,
              'result' in entry ? 'completed' : 'failed',
              'result' in entry ? toJson(entry.result) : null,
              'error' in entry ? toJson(entry.error) : null,
              now,
              now,
            ],
          );
          audit.push({ runId: effect.runId, taskId: effect.taskId, agent: w.writtenBy.agent, actor: w.writtenBy.actor, kind: 'effect.completed', data: { key: effect.key, tool: effect.tool } });
        }
        await insertAudit(tx, now, audit);
        return outcome;
      });
    },

    async get(q, now) {
      const g = grantCondition(q.grants);
      const at = q.asOf ?? now;
      const l = liveAt(at);
      const row = await db.read.get<VersionRow>(`SELECT * FROM memory_versions v WHERE v.tenant = ? AND v.scope = ? AND v.key = ? AND ${g.sql} AND ${l.sql} ORDER BY v.version DESC LIMIT 1`, [
        q.tenant,
        q.scope,
        q.key,
        ...g.params,
        ...l.params,
      ]);
      return row ? toFact(row) : null;
    },

    async history(q) {
      const g = grantCondition(q.grants);
      const rows = await db.read.all<VersionRow>(`SELECT * FROM memory_versions WHERE tenant = ? AND scope = ? AND key = ? AND ${g.sql} ORDER BY version`, [q.tenant, q.scope, q.key, ...g.params]);
      return rows.map(toFact);
    },

    async search(q, now) {
      const terms = searchTerms(q.query);
      if (terms.length === 0 || q.k <= 0) return [];
      const filter = (alias: string) => {
        const g = grantCondition(q.grants, `${alias}.scope`);
        const narrow = q.scopes?.length ? grantCondition(q.scopes.map((s) => ({ tree: s })), `${alias}.scope`) : { sql: '1 = 1', params: [] };
        const l = liveAt(q.asOf ?? now, alias);
        return { sql: `${alias}.tenant = ? AND ${g.sql} AND ${narrow.sql} AND ${l.sql}`, params: [q.tenant, ...g.params, ...narrow.params, ...l.params] as SqlParam[] };
      };
      let rows: Array<VersionRow & { score: number | string }>;
      if (caps.fullText === 'fts5') {
        const match = terms.map((t) => `"${t}"`).join(' OR ');
        // Rank and filter on the covering index first, then read whole rows for the top k only.
        const f = filter('f');
        rows = await db.read.all(
          `SELECT v.*, t.score FROM (
             SELECT f.seq AS seq, -bm25(memory_fts) AS score FROM memory_fts JOIN memory_versions f ON f.seq = memory_fts.rowid
             WHERE memory_fts MATCH ? AND ${f.sql} ORDER BY score DESC, f.seq LIMIT ?
           ) t JOIN memory_versions v ON v.seq = t.seq ORDER BY t.score DESC, v.id`,
          [match, ...f.params, q.k],
        );
      } else {
        const v = filter('v');
        const live = q.asOf === undefined ? ' AND v.valid_to IS NULL AND v.tombstone = 0' : '';
        rows = await db.read.all(
          `SELECT v.*, ts_rank(to_tsvector('simple', coalesce(v.text, '')), to_tsquery('simple', ?)) AS score FROM memory_versions v
           WHERE to_tsvector('simple', coalesce(v.text, '')) @@ to_tsquery('simple', ?)${live} AND ${v.sql} ORDER BY score DESC, v.id LIMIT ?`,
          [terms.join(' | '), terms.join(' | '), ...v.params, q.k],
        );
      }
      return rows.map((r): SearchHit => ({ fact: toFact(r), score: Number(r.score) }));
    },

    async conflicts(filter) {
      const conds: string[] = [];
      const params: SqlParam[] = [];
      for (const [cond, v] of [
        ['tenant = ?', filter.tenant],
        ['state = ?', filter.state],
        ['strategy = ?', filter.strategy],
      ] as const) {
        if (v === undefined) continue;
        conds.push(cond);
        params.push(v);
      }
      const rows = await db.read.all<ConflictRow>(`SELECT * FROM memory_conflicts ${conds.length ? `WHERE ${conds.join(' AND ')}` : ''} ORDER BY created_at, id LIMIT ?`, [...params, filter.limit ?? 1000]);
      return rows.map(toConflict);
    },

    async conflict(id) {
      const row = await db.read.get<ConflictRow>('SELECT * FROM memory_conflicts WHERE id = ?', [id]);
      return row ? toConflict(row) : null;
    },

    async attachConflict(id, link) {
      return db.transaction(async (tx) => {
        await tx.run('UPDATE memory_conflicts SET merge_run = ? WHERE id = ? AND merge_run IS NULL', [link.mergeRun, id]);
        const row = await tx.get<ConflictRow>('SELECT * FROM memory_conflicts WHERE id = ?', [id]);
        if (!row) throw new NotFoundError('conflict', id);
        return toConflict(row);
      });
    },

    async openConflictApproval(id, a, now) {
      return db.transaction(async (tx) => {
        const row = await tx.get<ConflictRow>('SELECT * FROM memory_conflicts WHERE id = ?', [id]);
        if (!row) throw new NotFoundError('conflict', id);
        const c = toConflict(row);
        if (c.approvalId !== null || c.state !== 'open') return c;
        // No task waits on this approval: deciding one wakes the task it names, so it names none
        // (the writer's task is in the conflict). An operator's write has no run either.
        const approvalId = await insertApproval(
          tx,
          {
            runId: c.writtenBy.run ?? '',
            taskId: '',
            agent: c.writtenBy.agent ?? c.writtenBy.actor,
            actionKey: `memory-conflict:${c.id}`,
            action: a.action,
            kind: 'approval',
            ruleId: null,
            reason: a.reason,
            approvers: a.approvers,
            expiresAt: null,
            onExpiry: null,
          },
          now,
          'memory',
        );
        const done = await tx.get<ConflictRow>('UPDATE memory_conflicts SET approval_id = ? WHERE id = ? RETURNING *', [approvalId, id]);
        return toConflict(done!);
      });
    },

    async resolveConflict(id, r, now) {
      return db.transaction(async (tx) => {
        const row = await tx.get<ConflictRow>('SELECT * FROM memory_conflicts WHERE id = ?', [id]);
        if (!row) throw new NotFoundError('conflict', id);
        const c = toConflict(row);
        if (c.state !== 'open') throw new InvalidStateError(`conflict ${id} is ${c.state}, not open`);
        const audit: AuditEntry[] = [];
        const by = { runId: c.writtenBy.run, taskId: c.writtenBy.task, agent: c.writtenBy.agent, actor: r.actor };
        if (r.kind === 'reject') {
          const done = await tx.get<ConflictRow>(`UPDATE memory_conflicts SET state = 'rejected', resolved_by = ?, resolved_at = ? WHERE id = ? RETURNING *`, [r.actor, now, id]);
          audit.push({ ...by, kind: 'memory.resolved', data: { conflict: id, strategy: c.strategy, by: r.actor, how: r.how, version: null } });
          await insertAudit(tx, now, audit);
          return { conflict: toConflict(done!), outcome: null };
        }
        const head = await headVersion(tx, c.tenant, c.scope, c.key);
        const prev = head === null ? null : await currentVersion(tx, c.tenant, c.scope, c.key);
        const live = isLive(prev, now) ? prev : null;
        if (r.kind === 'keep') {
          const kept = live ? live.version : null;
          const done = await tx.get<ConflictRow>(`UPDATE memory_conflicts SET state = 'resolved', resolved_version = ?, resolved_by = ?, resolved_at = ? WHERE id = ? RETURNING *`, [kept, r.actor, now, id]);
          audit.push({ ...by, kind: 'memory.resolved', data: { conflict: id, strategy: c.strategy, by: r.actor, how: r.how, version: kept } });
          await insertAudit(tx, now, audit);
          return { conflict: toConflict(done!), outcome: null };
        }
        // The resolution is itself a compare-and-set: a fact that moved since the merge was made keeps the conflict open.
        if ((live ? live.version : 0) !== r.expectedVersion) return { conflict: c, outcome: { kind: 'conflict', conflict: c, current: live } };
        const fact = await appendVersion(
          tx,
          caps,
          { tenant: c.tenant, scope: c.scope, key: c.key, value: r.value, text: r.text, writtenBy: r.writtenBy, sources: [], trust: r.trust, expiresAt: null, tombstone: false, embed: r.embed },
          head,
          prev,
          now,
        );
        if (!fact) return { conflict: c, outcome: { kind: 'conflict', conflict: c, current: live } };
        const done = await tx.get<ConflictRow>(`UPDATE memory_conflicts SET state = 'resolved', resolved_version = ?, resolved_by = ?, resolved_at = ? WHERE id = ? RETURNING *`, [fact.version, r.actor, now, id]);
        audit.push({ ...by, kind: 'memory.resolved', data: { conflict: id, strategy: c.strategy, by: r.actor, how: r.how, version: fact.version } });
        audit.push({ ...by, kind: 'memory.written', data: { fact: fact.id, scope: c.scope, key: c.key, version: fact.version, trust: r.trust } });
        await insertAudit(tx, now, audit);
        return { conflict: toConflict(done!), outcome: { kind: 'written', fact, conflict: toConflict(done!) } };
      });
    },

    async vectorSupport() {
      if (caps.vectors === null) return 'SQLite: the sqlite-vec package is not installed; install it with `npm install sqlite-vec`, or remove memory.embedder';
      if (caps.vectors === 'sqlite-vec') {
        const problem = db.enableVectors?.() ?? null;
        return problem && `SQLite: the sqlite-vec extension did not load (${problem}); reinstall it with \`npm install sqlite-vec\`, or remove memory.embedder`;
      }
      const installed = await db.read.get<{ v: string }>(`SELECT extversion AS v FROM pg_extension WHERE extname = 'vector'`);
      if (installed) return null;
      const available = await db.read.get<{ v: string }>(`SELECT default_version AS v FROM pg_available_extensions WHERE name = 'vector'`);
      return available
        ? 'PostgreSQL: the pgvector extension is available but not created in this database; run `CREATE EXTENSION vector;` as a superuser, or remove memory.embedder'
        : 'PostgreSQL: the pgvector extension is not installed on this server (pg_available_extensions has no "vector"); install pgvector (https://github.com/pgvector/pgvector), run `CREATE EXTENSION vector;`, or remove memory.embedder';
    },

    async searchVector(q, now) {
      if (q.k <= 0 || q.vector.length === 0) return [];
      needVectors();
      const g = grantCondition(q.grants, 'v.scope');
      const narrow = q.scopes?.length ? grantCondition(q.scopes.map((s) => ({ tree: s })), 'v.scope') : { sql: '1 = 1', params: [] };
      const l = liveAt(q.asOf ?? now, 'v');
      const vec = vectorText(q.vector);
      // Exact nearest neighbours: a scan of this tenant's embeddings of these dimensions, filtered by the grants in the same query.
      const distance = caps.vectors === 'sqlite-vec' ? 'vec_distance_cosine(e.embedding, vec_f32(?))' : '(e.embedding::vector <=> ?::vector)';
      const rows = await db.read.all<VersionRow & { score: number | string }>(
        `SELECT v.*, 1 - ${distance} AS score FROM memory_embeddings e JOIN memory_versions v ON v.id = e.version_id
         WHERE e.tenant = ? AND e.dims = ? AND v.tenant = ? AND ${g.sql} AND ${narrow.sql} AND ${l.sql} ORDER BY score DESC, v.id LIMIT ?`,
        [vec, q.tenant, q.vector.length, q.tenant, ...g.params, ...narrow.params, ...l.params, q.k],
      );
      return rows.map((r): SearchHit => ({ fact: toFact(r), score: Number(r.score) }));
    },

    async embedQueue(limit, now) {
      return db.transaction(async (tx) => {
        const rows = await tx.all<{ id: string; tenant: string; text: string | null; live: number | string }>(
          `SELECT v.id, v.tenant, v.text, CASE WHEN v.valid_to IS NULL AND v.tombstone = 0 AND (v.expires_at IS NULL OR v.expires_at > ?) THEN 1 ELSE 0 END AS live
           FROM memory_embed_queue q JOIN memory_versions v ON v.id = q.version_id ORDER BY q.created_at, q.version_id LIMIT ?`,
          [now, limit],
        );
        // A version replaced or forgotten before it was embedded is never searched: drop it from the queue.
        const stale = rows.filter((r) => Number(r.live) !== 1 || r.text === null).map((r) => r.id);
        if (stale.length) await tx.run(`DELETE FROM memory_embed_queue WHERE version_id IN (${placeholders(stale.length)})`, stale);
        return rows.filter((r) => Number(r.live) === 1 && r.text !== null).map((r) => ({ id: r.id, tenant: r.tenant, text: r.text! }));
      });
    },

    async saveEmbeddings(rows, now) {
      if (rows.length === 0) return;
      needVectors();
      const value = caps.vectors === 'sqlite-vec' ? 'vec_f32(?)' : '?';
      await db.transaction(async (tx) => {
        for (const r of rows) {
          await tx.run(
            `INSERT INTO memory_embeddings (version_id, tenant, dims, embedding, created_at) VALUES (?, ?, ?, ${value}, ?)
             ON CONFLICT (version_id) DO UPDATE SET dims = excluded.dims, embedding = excluded.embedding, created_at = excluded.created_at`,
            [r.id, r.tenant, r.vector.length, vectorText(r.vector), now],
          );
          await tx.run('DELETE FROM memory_embed_queue WHERE version_id = ?', [r.id]);
        }
      });
    },

    async queueUnembedded(dims, now) {
      return db.transaction((tx) =>
        tx.run(
          `INSERT INTO memory_embed_queue (version_id, created_at)
           SELECT v.id, ? FROM memory_versions v WHERE v.valid_to IS NULL AND v.tombstone = 0 AND v.text IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM memory_embeddings e WHERE e.version_id = v.id AND e.dims = ?)
           ON CONFLICT (version_id) DO NOTHING`,
          [now, dims],
        ),
      );
    },

    async forget(sel, opts, now) {
      return db.transaction(async (tx) => {
        const found = await forgettable(tx, sel, now);
        if (opts.dryRun || found.length === 0) return found;
        const audit: AuditEntry[] = [];
        for (const f of found) {
          const head = await headVersion(tx, f.tenant, f.scope, f.key);
          const tomb = await appendVersion(
            tx,
            caps,
            { tenant: f.tenant, scope: f.scope, key: f.key, value: null, text: null, writtenBy: { agent: null, run: null, task: null, turn: null, actor: opts.actor }, sources: [f.id], trust: 'owner', expiresAt: null, tombstone: true },
            head,
            f,
            now,
          );
          if (tomb) audit.push({ kind: 'memory.forgotten', actor: opts.actor, data: { fact: f.id, scope: f.scope, key: f.key, version: f.version, tombstone: tomb.version, selector: { ...sel } } });
        }
        await insertAudit(tx, now, audit);
        return found;
      });
    },

    async sweepExpired(now, limit) {
      return db.transaction(async (tx) => {
        const rows = await tx.all<VersionRow>('SELECT * FROM memory_versions WHERE valid_to IS NULL AND tombstone = 0 AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?', [now, limit]);
        const audit: AuditEntry[] = [];
        for (const f of rows.map(toFact)) {
          const head = await headVersion(tx, f.tenant, f.scope, f.key);
          const tomb = await appendVersion(
            tx,
            caps,
            { tenant: f.tenant, scope: f.scope, key: f.key, value: null, text: null, writtenBy: { agent: null, run: null, task: null, turn: null, actor: 'ttl' }, sources: [f.id], trust: 'owner', expiresAt: null, tombstone: true },
            head,
            f,
            now,
          );
          if (tomb) audit.push({ kind: 'memory.expired', actor: 'ttl', data: { fact: f.id, scope: f.scope, key: f.key, version: f.version } });
        }
        await insertAudit(tx, now, audit);
        return audit.length;
      });
    },
  };
}

/** A vector as JSON text: what sqlite-vec's vec_f32() and pgvector's text input both read. */
function vectorText(v: readonly number[]): string {
  return `[${v.map((x) => (Number.isFinite(x) ? x : 0)).join(',')}]`;
}

/**
 * The live facts a forget selector reaches: those written by the run or agent, or
 * derived from the source; then, transitively, the live facts derived from any of
 * those (or from an earlier version of them).
 */
async function forgettable(tx: SqlExecutor, sel: ForgetSelector, now: number): Promise<FactVersion[]> {
  const live = `v.valid_to IS NULL AND v.tombstone = 0 AND (v.expires_at IS NULL OR v.expires_at > ?)`;
  let seed: VersionRow[] = [];
  if (sel.run) seed = await tx.all<VersionRow>(`SELECT v.* FROM memory_versions v WHERE v.tenant = ? AND v.written_run = ? AND ${live}`, [sel.tenant, sel.run, now]);
  else if (sel.agent) seed = await tx.all<VersionRow>(`SELECT v.* FROM memory_versions v WHERE v.tenant = ? AND v.written_agent = ? AND ${live}`, [sel.tenant, sel.agent, now]);
  else if (sel.source)
    seed = await tx.all<VersionRow>(`SELECT v.* FROM memory_versions v JOIN memory_sources s ON s.version_id = v.id WHERE v.tenant = ? AND s.source = ? AND ${live}`, [sel.tenant, sel.source, now]);
  // A run or agent also wrote versions that are no longer current; what was derived from them goes too.
  const origins = new Set<string>(seed.map((r) => r.id));
  if (sel.run || sel.agent) {
    const col = sel.run ? 'written_run' : 'written_agent';
    for (const r of await tx.all<{ id: string }>(`SELECT id FROM memory_versions WHERE tenant = ? AND ${col} = ?`, [sel.tenant, (sel.run ?? sel.agent)!])) origins.add(r.id);
  }
  const out = new Map<string, FactVersion>(seed.map((r) => [r.id, toFact(r)]));
  const frontier = [...origins];
  while (frontier.length > 0) {
    const batch = frontier.splice(0, 200);
    const rows = await tx.all<VersionRow>(
      `SELECT DISTINCT v.* FROM memory_sources s JOIN memory_versions v ON v.id = s.version_id WHERE s.source IN (${placeholders(batch.length)}) AND v.tenant = ? AND ${live}`,
      [...batch, sel.tenant, now],
    );
    for (const r of rows) {
      if (out.has(r.id)) continue;
      out.set(r.id, toFact(r));
      frontier.push(r.id);
    }
  }
  return [...out.values()].sort((a, b) => a.validFrom - b.validFrom || a.id.localeCompare(b.id));
}
