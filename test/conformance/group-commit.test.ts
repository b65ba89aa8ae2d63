// Units that share a transaction (SQLite's group commit; PostgreSQL's when opted in)
// still fail alone: a unit that throws, whose statement breaks a constraint, or whose
// staged audit rows cannot be written is answered with its own error, and neither its
// rows nor its audit events are committed, while every other unit's are, with their
// audit chains intact. On SQLite the batch is tried without savepoints first and
// replayed once when a unit fails (sqlite-backend.ts, commitBatch).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifyAudit } from '../../src/audit/verify.ts';
import type { Json } from '../../src/core/types.ts';
import type { AuditEntry } from '../../src/store/audit.ts';
import type { SqlBackend } from '../../src/store/sql/backend.ts';
import { SHARED } from '../../src/store/sql/backend.ts';
import type { SqlExecutor } from '../../src/store/sql/executor.ts';
import { insertAudit } from '../../src/store/sql/audit-sql.ts';
import type { SqlStore } from '../../src/store/sql/sql-store.ts';
import { tempStore, TEST_DB } from '../helpers.ts';

const insert = (tx: SqlExecutor, id: string) => tx.run('INSERT INTO workers (id, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)', [id, 1, 'h', 1, 1]);

const entry = (kind: string, actor: string, stream: string, data?: unknown): AuditEntry => ({ kind, actor, stream, ...(data === undefined ? {} : { data: data as Json }) });

/** A unit that writes a worker row and audits it on the worker's own stream. */
const audited = (id: string, data: unknown = { id }) => async (tx: SqlExecutor) => {
  const n = await insert(tx, id);
  await insertAudit(tx, 1_000, [entry('test.unit', id, `test:${id}`, data)]);
  return n;
};

/** A value whose canonical JSON cannot be written: the unit's audit flush fails. */
const unwritable = {
  toJSON() {
    throw new Error('unwritable audit data');
  },
};

const outcome = (r: PromiseSettledResult<unknown>): unknown =>
  r.status === 'fulfilled' ? r.value : ((r.reason as { code?: string }).code ?? (r.reason as Error).message);

describe(`group commit (${TEST_DB})`, () => {
  it('a unit that throws, breaks a constraint or cannot write its audit rows fails alone; the rest commit with their audit events and the chain verifies', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const backend: SqlBackend = (store as SqlStore).backend;
    await backend.transaction((tx) => insert(tx, 'taken'));

    const before = (backend as { stats?: { transactions: number } }).stats?.transactions ?? 0;
    const thrown = (id: string) => async (tx: SqlExecutor) => {
      await audited(id)(tx);
      throw new Error(`boom ${id}`);
    };
    const settled = await Promise.allSettled([
      backend.transaction(audited('u1'), SHARED),
      backend.transaction(thrown('t1'), SHARED),
      // A second failure: on SQLite it meets the replay, where each unit has a savepoint.
      backend.transaction(thrown('t2'), SHARED),
      backend.transaction(audited('u2'), SHARED),
      backend.transaction(audited('taken'), SHARED),
      backend.transaction(audited('u-unwritable', unwritable), SHARED),
      backend.transaction(async (tx) => (await audited('u3')(tx)) + 41, SHARED),
    ]);
    const constraint = TEST_DB === 'postgres' ? '23505' : 'ERR_SQLITE_ERROR';
    assert.deepEqual(settled.map(outcome), [1, 'boom t1', 'boom t2', 1, constraint, 'unwritable audit data', 42]);

    const workers = await backend.read.all<{ id: string }>('SELECT id FROM workers ORDER BY id');
    assert.deepEqual(
      workers.map((w) => w.id),
      ['taken', 'u1', 'u2', 'u3'],
    );
    const events = await backend.read.all<{ actor: string; stream: string; stream_seq: number | string }>("SELECT actor, stream, stream_seq FROM audit_events WHERE kind = 'test.unit' ORDER BY actor");
    assert.deepEqual(
      events.map((e) => [e.actor, e.stream, Number(e.stream_seq)]),
      [
        ['u1', 'test:u1', 1],
        ['u2', 'test:u2', 1],
        ['u3', 'test:u3', 1],
      ],
    );
    const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(report.findings.length, 0, JSON.stringify(report.findings));

    // SQLite: the seven shared one transaction, the replay after the failures included (the
    // first, optimistic try is rolled back, not committed).
    if (TEST_DB === 'sqlite') assert.equal((backend as { stats?: { transactions: number } }).stats!.transactions - before, 1);
  });

  it('audit rows staged by the units of one transaction are chained in the order they were appended, continuing the stream without a gap', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const backend: SqlBackend = (store as SqlStore).backend;
    const step = (actor: string, at: number) => (tx: SqlExecutor) => insertAudit(tx, at, [entry('test.step', actor, 'test:shared', { actor })]);
    // The stream's first event alone, three units asked for at once (one batch on SQLite,
    // three transactions taking turns on the stream's head on PostgreSQL), then one more.
    await backend.transaction(step('first', 500));
    await Promise.all(['a', 'b', 'c'].map((id) => backend.transaction(step(id, 1_000), SHARED)));
    await backend.transaction(step('last', 2_000));
    const rows = await backend.read.all<{ actor: string; stream_seq: number | string; at: number | string }>("SELECT actor, stream_seq, at FROM audit_events WHERE stream = 'test:shared' ORDER BY stream_seq");
    assert.deepEqual(
      rows.map((r) => Number(r.stream_seq)),
      [1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      rows.map((r) => [r.actor, Number(r.at)]).sort(),
      [
        ['a', 1_000],
        ['b', 1_000],
        ['c', 1_000],
        ['first', 500],
        ['last', 2_000],
      ],
    );
    assert.equal(rows[0]!.actor, 'first');
    assert.equal(rows[4]!.actor, 'last');
    // SQLite's batch writes them in the order they were asked for.
    if (TEST_DB === 'sqlite') assert.deepEqual(rows.map((r) => r.actor), ['first', 'a', 'b', 'c', 'last']);
    const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(report.findings.length, 0, JSON.stringify(report.findings));
  });

  it('an event that says it opens its stream is chained from the genesis without a head lock; said of a stream that has events, it is refused and nothing is written', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const backend: SqlBackend = (store as SqlStore).backend;
    const opening = (actor: string): AuditEntry => ({ ...entry('test.open', actor, 'test:opened'), opensStream: true });
    await backend.transaction((tx) => insertAudit(tx, 1_000, [opening('first'), entry('test.next', 'second', 'test:opened')]));
    await assert.rejects(backend.transaction((tx) => insertAudit(tx, 2_000, [opening('again')])));
    const rows = await backend.read.all<{ actor: string; stream_seq: number | string }>("SELECT actor, stream_seq FROM audit_events WHERE stream = 'test:opened' ORDER BY stream_seq");
    assert.deepEqual(
      rows.map((r) => [r.actor, Number(r.stream_seq)]),
      [
        ['first', 1],
        ['second', 2],
      ],
    );
    const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(report.findings.length, 0, JSON.stringify(report.findings));
  });
});
