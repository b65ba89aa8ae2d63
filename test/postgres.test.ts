// The PostgreSQL adapter itself: `?` → `$n` translation, URL parameters, transactions
// that roll back whole, migrations recorded per version (a newer schema refused), the
// advisory lock that serialises two migrators, and a clear retryable error when the
// server cannot be reached. The shared behaviour runs in the conformance suites.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifyAudit } from '../src/audit/verify.ts';
import { InvalidInputError, LeaseLostError, SchemaOutdatedError, SchemaTooNewError } from '../src/core/errors.ts';
import { openStore } from '../src/runtime/open-store.ts';
import { PgBackend } from '../src/store/postgres/pg-backend.ts';
import { parsePgUrl } from '../src/store/postgres/pg-config.ts';
import { StoreUnavailableError } from '../src/store/postgres/pg-errors.ts';
import { toPgPlaceholders } from '../src/store/postgres/placeholders.ts';
import { SHARED } from '../src/store/sql/backend.ts';
import { claimLimit, type SqlExecutor } from '../src/store/sql/executor.ts';
import { SqlStore } from '../src/store/sql/sql-store.ts';
import type { Lease } from '../src/store/store.ts';
import type { Run } from '../src/core/types.ts';
import { PG_TEST_URL, pgAdmin, until } from './helpers.ts';
import { PG_ONLY, pgStore, sql } from './fixtures/pg-env.ts';

describe('placeholders and URLs (no database)', () => {
  it('translates ? to $n outside literals, quoted identifiers and comments', () => {
    assert.equal(toPgPlaceholders('SELECT * FROM t WHERE a = ? AND b IN (?, ?)'), 'SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)');
    assert.equal(
      toPgPlaceholders(`SELECT '?', 'it''s ?', "col?" FROM t -- what?\nWHERE x = ? /* and ? */ AND y = ?`),
      `SELECT '?', 'it''s ?', "col?" FROM t -- what?\nWHERE x = $1 /* and ? */ AND y = $2`,
    );
    assert.equal(toPgPlaceholders('SELECT 1'), 'SELECT 1');
    // Translated again (from the cache): numbering starts at $1 every time, nothing carries over.
    const sqlText = 'UPDATE t SET a = ? WHERE id = ?';
    assert.equal(toPgPlaceholders(sqlText), 'UPDATE t SET a = $1 WHERE id = $2');
    assert.equal(toPgPlaceholders(sqlText), toPgPlaceholders(sqlText));
  });

  it('a claim\'s limit is written into its SQL as a plain whole number from 1 to 10,000, whatever it is asked for', () => {
    const limits = [8, 2.7, 0, -3, Number.NaN, Number.POSITIVE_INFINITY, 1e21].map(claimLimit);
    assert.deepEqual(limits, ['8', '2', '1', '1', '1', '10000', '10000']);
  });

  it('reads schema= and pool= from the URL, passes the rest on, and never prints the password', () => {
    const c = parsePgUrl('postgres://spine:s3cret@db.internal:6432/prod?schema=tenant_a&pool=25&sslmode=require');
    assert.equal(c.schema, 'tenant_a');
    assert.equal(c.poolSize, 25);
    assert.equal(c.connectionString, 'postgres://spine:s3cret@db.internal:6432/prod?sslmode=require');
    assert.ok(!c.safeUrl.includes('s3cret'), c.safeUrl);
    assert.match(c.safeUrl, /spine:\*\*\*@db\.internal:6432\/prod/);
    const d = parsePgUrl('postgresql://localhost/test');
    assert.deepEqual([d.schema, d.poolSize], [null, 10]);
    assert.throws(() => parsePgUrl('postgres://h/db?pool=0'), (e: unknown) => e instanceof InvalidInputError && /pool=0/.test(e.message));
    assert.throws(() => parsePgUrl('postgres://h/db?pool=lots'), InvalidInputError);
    assert.throws(() => parsePgUrl('postgres://h/db?schema=a;drop'), (e: unknown) => e instanceof InvalidInputError && /schema "a;drop"/.test(e.message));
  });

  it('openStore picks the PostgreSQL adapter for postgres:// and postgresql:// with its capabilities', async () => {
    for (const scheme of ['postgres', 'postgresql']) {
      const store = openStore({ url: `${scheme}://u:pw@127.0.0.1:1/x?schema=s1` });
      assert.deepEqual(store.capabilities, { groupCommit: false, crossProcessWakeups: true, skipLockedClaims: true, fullText: 'tsvector', vectors: 'pgvector' });
      assert.ok(!store.description.includes(':pw@'), store.description);
      await store.close();
    }
  });
});

/**
 * A run whose root task hands off to lanes `ids` (inputs 0, 1, …) in an `all` join and
 * waits for them: the run. The lanes are queued, not yet claimed.
 */
async function waitingOnLanes(store: SqlStore, ids: readonly string[]): Promise<Run> {
  const { run } = await store.runs.create({ agent: 'boss', input: null, maxAttempts: 1 }, Date.now());
  const [root] = await store.tasks.claim({ workerId: 'w1', limit: 1, leaseMs: 60_000, now: Date.now() });
  const children = ids.map((id, i) => ({ id, agent: 'lane', input: i, parentAction: i, maxAttempts: 1 }));
  await store.commitTurn({ lease: root!.lease, now: Date.now(), turn: { n: 1, actions: [], results: [] }, outcome: { kind: 'wait', children }, audit: [] });
  return run;
}

describe('the PostgreSQL adapter', { skip: PG_ONLY }, () => {
  it('a transaction that throws rolls back everything it did; a failed statement too', async (t) => {
    const { backend } = await pgStore(t, { migrate: true });
    await assert.rejects(
      backend.transaction(async (tx) => {
        await tx.run('INSERT INTO workers (id, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)', ['w1', 1, 'h', 1, 1]);
        throw new Error('boom');
      }),
      /boom/,
    );
    await assert.rejects(
      backend.transaction(async (tx) => {
        await tx.run('INSERT INTO workers (id, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)', ['w2', 1, 'h', 1, 1]);
        await tx.run('INSERT INTO workers (id, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)', ['w2', 1, 'h', 1, 1]);
      }),
      (err: unknown) => (err as { code?: string }).code === '23505',
    );
    assert.deepEqual(await backend.read.all('SELECT id FROM workers'), []);
    // A committed one is there, with BIGINT columns as numbers and the row count of a change.
    const changed = await backend.transaction((tx) =>
      tx.run('INSERT INTO workers (id, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)', ['w3', 7, 'h', 1_800_000_000_123, 1]),
    );
    assert.equal(changed, 1);
    assert.deepEqual(await backend.read.get('SELECT pid, started_at FROM workers WHERE id = ?', ['w3']), { pid: 7, started_at: 1_800_000_000_123 });
  });

  it('group commit (opt-in, commitPipelines): hot-path transactions asked for together share one; a failing one fails alone, the others commit', async (t) => {
    const { backend } = await pgStore(t, { migrate: true, commitPipelines: 1 });
    const insert = (tx: SqlExecutor, id: string) => tx.run('INSERT INTO workers (id, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)', [id, 1, 'h', 1, 1]);
    const ids = async () => (await backend.read.all<{ id: string }>('SELECT id FROM workers ORDER BY id')).map((r) => r.id);

    // Five asked for in one turn of the event loop: one transaction, not five (unmarked ones: one each).
    let before = backend.stats.transactions;
    await Promise.all(['a1', 'a2', 'a3', 'a4', 'a5'].map((id) => backend.transaction((tx) => insert(tx, id), SHARED)));
    assert.equal(backend.stats.transactions - before, 1);
    before = backend.stats.transactions;
    await Promise.all(['c1', 'c2'].map((id) => backend.transaction((tx) => insert(tx, id))));
    assert.equal(backend.stats.transactions - before, 2);
    assert.deepEqual(await ids(), ['a1', 'a2', 'a3', 'a4', 'a5', 'c1', 'c2']);

    // In one batch: a unit that throws after writing, and one whose statement fails (a duplicate key).
    const settled = await Promise.allSettled([
      backend.transaction((tx) => insert(tx, 'b1'), SHARED),
      backend.transaction(async (tx) => {
        await insert(tx, 'b-thrown');
        throw new Error('boom');
      }, SHARED),
      backend.transaction((tx) => insert(tx, 'b2'), SHARED),
      backend.transaction((tx) => insert(tx, 'a1'), SHARED),
      backend.transaction(async (tx) => (await insert(tx, 'b3')) + 41, SHARED),
    ]);
    assert.deepEqual(
      settled.map((r) => (r.status === 'fulfilled' ? r.value : ((r.reason as { code?: string }).code ?? (r.reason as Error).message))),
      [1, 'boom', 1, '23505', 42],
    );
    assert.deepEqual(await ids(), ['a1', 'a2', 'a3', 'a4', 'a5', 'b1', 'b2', 'b3', 'c1', 'c2']);
  });

  it('a common turn commits in one round trip, the last one of a run too: fence, turn row, run row, events and heads are one statement, its own transaction', async (t) => {
    const { store, backend } = await pgStore(t, { migrate: true });
    const run = await store.runs.create({ agent: 'solo', input: null, maxAttempts: 1 }, Date.now());
    const [claimed] = await store.tasks.claim({ workerId: 'w1', limit: 1, leaseMs: 60_000, now: Date.now() });
    const lease = claimed!.lease;
    const runId = run.run.id;
    const turn = (n: number) => ({ n, actions: [], results: [] });
    const trips = async (commit: () => Promise<void>): Promise<number> => {
      const before = backend.stats.queries;
      await commit();
      return backend.stats.queries - before;
    };
    const answered = (n: number) => [{ kind: 'turn.committed', runId, taskId: lease.taskId, data: { turn: n } }];
    assert.equal(await trips(() => store.commitTurn({ lease, now: Date.now(), turn: turn(1), outcome: { kind: 'continue' }, audit: answered(1) })), 1);
    // A write of this process off the hot path (an effect's record, say) keeps the task's hint current.
    await store.audit.append([{ kind: 'operator.note', runId, taskId: lease.taskId, actor: 'op' }], Date.now());
    // The root task's last turn finishes its run in the same statement.
    assert.equal(await trips(() => store.commitTurn({ lease, now: Date.now(), turn: { ...turn(2), output: 'done' }, outcome: { kind: 'succeed', output: 'done' }, audit: answered(2) })), 1);
    assert.deepEqual(backend.hints.stats, { single: 2, fallbacks: 0 });
    const finished = await store.runs.get(runId);
    assert.deepEqual([finished?.state, finished?.output], ['succeeded', 'done']);
    const task = await store.tasks.get(lease.taskId);
    assert.deepEqual([task?.state, task?.turns, task?.leaseOwner], ['succeeded', 2, null]);
    assert.deepEqual((await store.tasks.turns(lease.taskId)).map((r) => r.turn), [1, 2]);
    const events = (await store.audit.list({ runId, limit: 100 })).map((e) => e.kind);
    assert.deepEqual(events, ['run.created', 'task.created', 'task.leased', 'task.running', 'turn.committed', 'operator.note', 'turn.committed', 'task.succeeded', 'run.succeeded']);
    const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(report.findings.length, 0, JSON.stringify(report.findings));
    // A lease already finished: nothing written, the lease is lost.
    await assert.rejects(store.commitTurn({ lease, now: Date.now(), turn: turn(3), outcome: { kind: 'continue' }, audit: answered(3) }), LeaseLostError);
    assert.equal((await store.audit.list({ runId, limit: 100 })).length, events.length);
  });

  it('commits asked for together share a statement: each unit is fenced on its own, a lost lease writes nothing of its unit and the others commit', async (t) => {
    const { store, backend, schema } = await pgStore(t, { migrate: true });
    const made = await Promise.all(Array.from({ length: 12 }, (_, i) => store.runs.create({ agent: 'solo', input: { i }, maxAttempts: 1 }, Date.now())));
    const claimed = await store.tasks.claim({ workerId: 'w1', limit: 12, leaseMs: 60_000, now: Date.now() });
    assert.equal(claimed.length, 12);
    // One task's lease was taken over meanwhile (expired and reclaimed by another worker).
    const stolen = claimed[5]!;
    await sql(schema, `UPDATE tasks SET lease_owner = 'w2', lease_no = lease_no + 1 WHERE id = $1`, [stolen.task.id]);
    const before = backend.stats.queries - backend.stats.notifies;
    const settled = await Promise.allSettled(
      claimed.map((c, i) =>
        store.commitTurn({
          lease: c.lease,
          now: Date.now(),
          turn: { n: 1, actions: [], results: [], output: i },
          outcome: { kind: 'succeed', output: i },
          audit: [{ kind: 'turn.committed', runId: c.task.runId, taskId: c.task.id, data: { turn: 1 } }],
        }),
      ),
    );
    const trips = backend.stats.queries - backend.stats.notifies - before;
    // A statement is built once its connection is free, from every unit queued by then: 12 units, 1–3 statements.
    assert.ok(trips >= 1 && trips <= 3, `12 commits in ${trips} statements`);
    assert.deepEqual(backend.hints.stats, { single: 11, fallbacks: 0 });
    settled.forEach((r, i) => {
      if (i === 5) assert.ok(r.status === 'rejected' && r.reason instanceof LeaseLostError, 'the stolen lease is lost');
      else assert.equal(r.status, 'fulfilled', `commit ${i}`);
    });
    for (const [i, c] of claimed.entries()) {
      const run = await store.runs.get(c.task.runId);
      const kinds = (await store.audit.list({ runId: c.task.runId, limit: 20 })).map((e) => e.kind);
      if (i === 5) {
        assert.deepEqual([run?.state, (await store.tasks.get(c.task.id))?.leaseOwner], ['running', 'w2']);
        assert.deepEqual(kinds, ['run.created', 'task.created', 'task.leased', 'task.running']);
        assert.deepEqual(await store.tasks.turns(c.task.id), []);
      } else {
        assert.deepEqual([run?.state, run?.output], ['succeeded', i]);
        assert.deepEqual(kinds, ['run.created', 'task.created', 'task.leased', 'task.running', 'turn.committed', 'task.succeeded', 'run.succeeded']);
      }
    }
    // Each run asked for was claimed and committed above, none lost on the way.
    assert.deepEqual(made.map((m) => m.run.id).sort(), claimed.map((c) => c.task.runId).sort());
    const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(report.findings.length, 0, JSON.stringify(report.findings));
  });

  it('a stale head in one unit refuses its shared statement whole: every unit of it commits by a transaction instead', async (t) => {
    const { store, backend } = await pgStore(t, { migrate: true });
    for (let i = 0; i < 6; i++) await store.runs.create({ agent: 'solo', input: null, maxAttempts: 1 }, Date.now());
    const claimed = await store.tasks.claim({ workerId: 'w1', limit: 6, leaseMs: 60_000, now: Date.now() });
    // One unit's hint is ahead of the database. The six are asked for in one tick, so one
    // statement takes them all (it is built once its connection comes): all six fall back.
    const stale = `task:${claimed[2]!.task.id}`;
    const head = backend.hints.heads.get(stale)!;
    backend.hints.heads.set(stale, { n: head.n + 1, hash: head.hash });
    const before = backend.stats.queries - backend.stats.notifies;
    await Promise.all(claimed.map((c) => store.commitTurn({ lease: c.lease, now: Date.now(), turn: { n: 1, actions: [], results: [], output: 1 }, outcome: { kind: 'succeed', output: 1 }, audit: [] })));
    assert.deepEqual(backend.hints.stats, { single: 0, fallbacks: 6 });
    // The refused statement, then six transactions of four round trips or more.
    assert.ok(backend.stats.queries - backend.stats.notifies - before >= 1 + 6 * 4);
    for (const c of claimed) assert.equal((await store.runs.get(c.task.runId))?.state, 'succeeded');
    const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(report.findings.length, 0, JSON.stringify(report.findings));
  });

  it('lanes of one join committing together: their statements look once per parent, and the join is decided once', async (t) => {
    const { store, backend } = await pgStore(t, { migrate: true });
    const run = await waitingOnLanes(store, Array.from({ length: 10 }, (_, i) => `task_lane_${i}`));
    const lanes = await store.tasks.claim({ workerId: 'w2', limit: 10, leaseMs: 60_000, now: Date.now() });
    const before = backend.stats.queries - backend.stats.notifies;
    await Promise.all(lanes.map((l) => store.commitTurn({ lease: l.lease, now: Date.now(), turn: { n: 1, actions: [], results: [], output: 1 }, outcome: { kind: 'succeed', output: 1 }, audit: [] })));
    const trips = backend.stats.queries - backend.stats.notifies - before;
    // Statements and their looks (one per parent each), and the deciding transaction (BEGIN, its
    // statements, COMMIT); a statement and a look per lane would be 20 and more.
    assert.ok(trips <= 12, `10 lanes in ${trips} round trips`);
    assert.deepEqual(backend.hints.stats, { single: 10, fallbacks: 0 });
    assert.equal((await store.tasks.get(run.rootTaskId))?.state, 'queued');
    const joins = (await store.audit.list({ runId: run.id, limit: 200 })).filter((e) => e.kind === 'join.completed');
    assert.equal(joins.length, 1);
    assert.deepEqual((joins[0]!.data as { ok: number }).ok, 10);
  });

  it('a claim commits without waiting for its WAL flush; the effect\'s attempt and the turn\'s commit after it, on the same connection, wait for theirs', async (t) => {
    // One connection: the claim's setting must end with its transaction, not stay on the connection for the writes after it.
    const { store, schema } = await pgStore(t, { migrate: true, poolSize: 1 });
    // What each write ran under, as the database saw it.
    await sql(schema, 'CREATE TABLE sync_seen (n serial, what text, setting text)');
    await sql(schema, `CREATE FUNCTION note_sync() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO sync_seen (what, setting) VALUES (TG_TABLE_NAME || ':' || NEW.state, current_setting('synchronous_commit')); RETURN NEW; END $$`);
    await sql(schema, 'CREATE TRIGGER note_sync AFTER INSERT OR UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION note_sync()');
    await sql(schema, 'CREATE TRIGGER note_sync AFTER INSERT OR UPDATE ON effects FOR EACH ROW EXECUTE FUNCTION note_sync()');
    const run = await store.runs.create({ agent: 'solo', input: null, maxAttempts: 1 }, Date.now());
    const [claimed] = await store.tasks.claim({ workerId: 'w1', limit: 1, leaseMs: 60_000, now: Date.now() });
    const lease = claimed!.lease;
    const rec = await store.tasks.beginEffect({ key: 'k1', runId: run.run.id, taskId: lease.taskId, turn: 1, action: 0, tool: 't', inputDigest: 'd' }, Date.now());
    assert.equal(rec.state, 'started');
    await store.commitTurn({ lease, now: Date.now(), turn: { n: 1, actions: [], results: [], output: 'done' }, outcome: { kind: 'succeed', output: 'done' }, audit: [] });
    const seen = await sql<{ what: string; setting: string }>(schema, 'SELECT what, setting FROM sync_seen ORDER BY n');
    assert.deepEqual(seen, [
      { what: 'tasks:queued', setting: 'on' },
      { what: 'tasks:running', setting: 'off' },
      { what: 'effects:started', setting: 'on' },
      { what: 'tasks:succeeded', setting: 'on' },
    ]);
  });

  it('a transaction\'s BEGIN goes with its first statement once that is prepared on the connection: a claim is 3 round trips, not 4, and values read back as written', async (t) => {
    const { store, backend, schema } = await pgStore(t, { migrate: true, poolSize: 1 });
    await sql(schema, 'CREATE TABLE fused_seen (k serial, v text, n bigint)');
    // Values an EXECUTE's literals must carry exactly: quotes, backslashes (an E'' string), non-ASCII, SQL, NULL.
    const values: Array<[string | null, number | null]> = [
      ["it's", 1],
      ["back\\slash \\x41 E'x' \\'", -2],
      ['ünï 🦀 \u2028', 1_796_683_015_495],
      ["'); DROP TABLE fused_seen; --", null],
      [null, 0],
      ['', 3],
    ];
    const trips: number[] = [];
    for (const [v, n] of values) {
      const before = backend.stats.queries;
      await backend.transaction((tx) => tx.run('INSERT INTO fused_seen (v, n) VALUES (?, ?)', [v, n]));
      trips.push(backend.stats.queries - before);
    }
    // The first prepares the INSERT after a BEGIN of its own; the others send the BEGIN with it.
    assert.deepEqual(trips, [3, 2, 2, 2, 2, 2]);
    const rows = await sql<{ v: string | null; n: number | string | null }>(schema, 'SELECT v, n FROM fused_seen ORDER BY k');
    assert.deepEqual(
      rows.map((r) => [r.v, r.n === null ? null : Number(r.n)]),
      values,
    );

    // A claim: BEGIN (with its lossy setting) and the claim statement, the events, COMMIT.
    await Promise.all(Array.from({ length: 3 }, () => store.runs.create({ agent: 'solo', input: null, maxAttempts: 1 }, Date.now())));
    const claims: number[] = [];
    for (let i = 0; i < 3; i++) {
      const before = backend.stats.queries;
      assert.equal((await store.tasks.claim({ workerId: 'w1', limit: 1, leaseMs: 60_000, now: Date.now() })).length, 1);
      claims.push(backend.stats.queries - before);
    }
    assert.deepEqual(claims, [4, 3, 3]);
    const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(report.findings.length, 0, JSON.stringify(report.findings));
  });

  it('a statement not found under its name (a pooler that renames them; forged with DEALLOCATE ALL) fails nothing: the transaction runs again with its BEGIN alone, and so do later ones', async (t) => {
    const { backend, schema } = await pgStore(t, { migrate: true, poolSize: 1 });
    await sql(schema, 'CREATE TABLE fused_seen (k serial, v text)');
    const insert = async (v: string): Promise<number> => {
      const before = backend.stats.queries;
      await backend.transaction((tx) => tx.run('INSERT INTO fused_seen (v) VALUES (?)', [v]));
      return backend.stats.queries - before;
    };
    assert.equal(await insert('a'), 3);
    assert.equal(await insert('b'), 2);
    // The server connection keeps none of this process's statements, as a pooler's would not.
    await backend.transaction((tx) => tx.exec('DEALLOCATE ALL'));
    // BEGIN with an EXECUTE that finds nothing; then, prepared anew: BEGIN, INSERT, COMMIT.
    assert.equal(await insert('c'), 4);
    assert.equal(await insert('d'), 3);
    assert.deepEqual(
      (await sql<{ v: string }>(schema, 'SELECT v FROM fused_seen ORDER BY k')).map((r) => r.v),
      ['a', 'b', 'c', 'd'],
    );
  });

  it('a claim\'s statement is planned once per limit, not at every claim (its limit is in the text, not a parameter)', async (t) => {
    // One connection, so the claims and the look at its prepared statements share it.
    const { store, backend } = await pgStore(t, { migrate: true, poolSize: 1 });
    // A queue long enough that a plan for an unseen LIMIT (a tenth of it) costs more than one for 2.
    await Promise.all(Array.from({ length: 3_000 }, () => store.runs.create({ agent: 'solo', input: null, maxAttempts: 1 }, Date.now())));
    await backend.read.run('ANALYZE tasks');
    for (let i = 0; i < 12; i++) assert.equal((await store.tasks.claim({ workerId: 'w1', limit: 2, leaseMs: 60_000, now: Date.now() })).length, 2);
    const [claim] = await backend.read.all<{ generic: number; custom: number }>(
      `SELECT generic_plans AS generic, custom_plans AS custom FROM pg_prepared_statements WHERE statement LIKE 'WITH picked AS MATERIALIZED%'`,
    );
    // PostgreSQL plans a prepared statement's first five executions for their values,
    // then keeps one plan if it costs no more; a LIMIT it cannot see never does.
    assert.ok(claim, 'the claim is a prepared statement');
    const [custom, generic] = [Number(claim.custom), Number(claim.generic)];
    assert.equal(custom + generic, 12);
    assert.ok(generic >= 6, `claims planned for their values ${custom} times, with the one plan ${generic} (with the limit a parameter: 12 and 0)`);
  });

  it('one-statement commit: a lane of an all join leaves its parent\'s row unwritten, and the lane that commits last decides the join', async (t) => {
    const { store, backend } = await pgStore(t, { migrate: true });
    const run = await waitingOnLanes(store, ['task_lane_a', 'task_lane_b', 'task_lane_c']);
    const lanes = await store.tasks.claim({ workerId: 'w2', limit: 3, leaseMs: 60_000, now: Date.now() });
    assert.equal(lanes.length, 3);
    const trips: number[] = [];
    const out: number[] = [];
    for (const lane of lanes) {
      const before = backend.stats.queries - backend.stats.notifies;
      await store.commitTurn({ lease: lane.lease, now: Date.now(), turn: { n: 1, actions: [], results: [], output: lane.task.input }, outcome: { kind: 'succeed', output: lane.task.input }, audit: [] });
      trips.push(backend.stats.queries - backend.stats.notifies - before);
      out.push((await store.tasks.get(run.rootTaskId))!.waitingOn);
    }
    // The statement, then a look at the parent's lanes; the last lane's look finds them all finished and decides.
    assert.deepEqual(trips.slice(0, 2), [2, 2]);
    assert.ok(trips[2]! > 2, `the last lane decides the join in a transaction (${trips[2]} round trips)`);
    assert.deepEqual(backend.hints.stats, { single: 3, fallbacks: 0 });
    // Task.waitingOn counts the lanes still out, though no lane wrote the parent's count.
    assert.deepEqual(out, [2, 1, 0]);
    const parent = await store.tasks.get(run.rootTaskId);
    assert.equal(parent?.state, 'queued');
    const kinds = (await store.audit.list({ runId: run.id, limit: 100 })).filter((e) => e.taskId === run.rootTaskId).map((e) => e.kind);
    assert.deepEqual(kinds.slice(-3), ['task.waiting', 'join.completed', 'task.joined']);
    const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(report.findings.length, 0, JSON.stringify(report.findings));
  });

  it('lanes of one all join finishing together in two processes, one of them by a transaction: the join is decided exactly once', async (t) => {
    const { store, schema } = await pgStore(t, { migrate: true, keepSchema: true });
    const other = await pgStore(t, { schema });
    for (let round = 0; round < 5; round++) {
      const run = await waitingOnLanes(store, Array.from({ length: 12 }, (_, i) => `task_r${round}_lane_${i}`));
      const mine = await store.tasks.claim({ workerId: 'w2', limit: 6, leaseMs: 60_000, now: Date.now() });
      const theirs = await other.store.tasks.claim({ workerId: 'w3', limit: 6, leaseMs: 60_000, now: Date.now() });
      assert.equal(mine.length + theirs.length, 12);
      await Promise.all(
        [...mine.map((c) => [store, c] as const), ...theirs.map((c) => [other.store, c] as const)].map(([s, c], i) =>
          s.commitTurn({
            lease: c.lease,
            now: Date.now(),
            turn: { n: 1, actions: [], results: [], output: i },
            // One lane commits by a transaction (an outbound message is not the statement's), locking the parent's row.
            outcome: { kind: 'succeed', output: i },
            audit: [],
            ...(i === 3 ? { outbox: [{ idempotencyKey: `k_${round}`, runId: c.task.runId, taskId: c.task.id, channel: 'cli', account: 'default', target: 'x', payload: 'hi' }] } : {}),
          }),
        ),
      );
      const parent = await store.tasks.get(run.rootTaskId);
      assert.equal(parent?.state, 'queued', `round ${round}`);
      const joins = (await store.audit.list({ runId: run.id, limit: 200 })).filter((e) => e.kind === 'join.completed');
      assert.equal(joins.length, 1, `round ${round}: one join.completed`);
      const data = joins[0]!.data as { ok: number; failed: number };
      assert.deepEqual([data.ok, data.failed], [12, 0]);
      const [woken] = await store.tasks.claim({ workerId: 'w1', limit: 1, leaseMs: 60_000, now: Date.now() });
      assert.equal(woken?.task.id, run.rootTaskId);
      await store.commitTurn({ lease: woken.lease, now: Date.now(), turn: { n: 2, actions: [], results: [], output: 'done' }, outcome: { kind: 'succeed', output: 'done' }, audit: [] });
    }
    const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(report.findings.length, 0, JSON.stringify(report.findings));
  });

  it('a lane committing in one statement waits for a transaction that holds its parent\'s row, then sees the join complete and decides it', async (t) => {
    const { store, schema } = await pgStore(t, { migrate: true });
    const run = await waitingOnLanes(store, ['task_lane_t', 'task_lane_f']);
    const lanes = await store.tasks.claim({ workerId: 'w2', limit: 2, leaseMs: 60_000, now: Date.now() });
    const f = lanes.find((c) => c.task.id === 'task_lane_f')!;
    // Lane t finishes in a transaction of another process that has locked the parent and
    // counted lane f unfinished, and has not committed yet.
    await pgAdmin(
      PG_TEST_URL,
      async (client) => {
        await client.query('BEGIN');
        await client.query(`UPDATE tasks SET state = 'succeeded', finished_at = $1, lease_owner = NULL WHERE id = 'task_lane_t'`, [Date.now()]);
        await client.query(`UPDATE tasks SET updated_at = $1 WHERE id = $2`, [Date.now(), run.rootTaskId]);
        const commit = store.commitTurn({ lease: f.lease, now: Date.now(), turn: { n: 1, actions: [], results: [], output: 'f' }, outcome: { kind: 'succeed', output: 'f' }, audit: [] });
        const blocked = until('lane f waits on the parent row', async () => {
          // The commit statement (pg_stat_activity keeps only its first 1 KiB) waiting for a lock.
          const rows = await sql<{ n: number }>(schema, `SELECT COUNT(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%fenced AS (%'`);
          return rows[0]!.n > 0;
        });
        // Without the share lock lane f would commit now and look before t's commit: nobody would decide the join.
        assert.equal(await Promise.race([commit.then(() => 'committed'), blocked.then(() => 'blocked')]), 'blocked');
        await client.query('COMMIT');
        await commit;
      },
      schema,
    );
    const parent = await store.tasks.get(run.rootTaskId);
    assert.equal(parent?.state, 'queued');
    const kinds = (await store.audit.list({ runId: run.id, limit: 100 })).filter((e) => e.taskId === run.rootTaskId).map((e) => e.kind);
    assert.deepEqual(kinds.slice(-2), ['join.completed', 'task.joined']);
  });

  it('runs.create is one round trip, its own transaction; the same idempotency key again finds the first run', async (t) => {
    const { store, backend } = await pgStore(t, { migrate: true });
    const before = backend.stats.queries - backend.stats.notifies;
    const first = await store.runs.create({ agent: 'solo', input: { x: 1 }, maxAttempts: 2, idempotencyKey: 'k-1' }, Date.now());
    // Besides the NOTIFY that wakes other processes' workers, sent after the commit.
    assert.equal(backend.stats.queries - backend.stats.notifies - before, 1);
    const again = await store.runs.create({ agent: 'solo', input: { x: 2 }, maxAttempts: 2, idempotencyKey: 'k-1' }, Date.now());
    assert.deepEqual([first.created, again.created, again.run.id, again.run.input], [true, false, first.run.id, { x: 1 }]);
    const tasks = await store.tasks.list({ runId: first.run.id, limit: 10 });
    assert.deepEqual(
      tasks.map((x) => [x.id, x.state, x.maxAttempts, x.input]),
      [[first.run.rootTaskId, 'queued', 2, { x: 1 }]],
    );
    assert.deepEqual((await store.audit.list({ runId: first.run.id, limit: 10 })).map((e) => e.kind), ['run.created', 'task.created']);
    const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(report.findings.length, 0, JSON.stringify(report.findings));
  });

  it('runs created at once without an idempotency key share statements (100 to one), each with its root task and events', async (t) => {
    const { store, backend } = await pgStore(t, { migrate: true });
    const before = backend.stats.queries - backend.stats.notifies;
    const made = await Promise.all(Array.from({ length: 250 }, (_, i) => store.runs.create({ agent: 'solo', input: { i }, maxAttempts: 1 + (i % 3) }, Date.now())));
    const trips = backend.stats.queries - backend.stats.notifies - before;
    assert.ok(trips >= 3 && trips <= 6, `250 runs in ${trips} statements`);
    assert.ok(made.every((m) => m.created));
    assert.equal(new Set(made.map((m) => m.run.id)).size, 250);
    const some = made[137]!.run;
    assert.deepEqual(some.input, { i: 137 });
    const tasks = await store.tasks.list({ runId: some.id, limit: 10 });
    assert.deepEqual(
      tasks.map((x) => [x.id, x.state, x.maxAttempts, x.input]),
      [[some.rootTaskId, 'queued', 1 + (137 % 3), { i: 137 }]],
    );
    assert.deepEqual((await store.audit.list({ runId: some.id, limit: 10 })).map((e) => e.kind), ['run.created', 'task.created']);
    const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(report.findings.length, 0, JSON.stringify(report.findings));
  });

  it('runs with large inputs share a statement up to about 1 MiB of input, one run at least', async (t) => {
    const { store, backend } = await pgStore(t, { migrate: true });
    const big = 'x'.repeat(300_000);
    const before = backend.stats.queries - backend.stats.notifies;
    const made = await Promise.all(Array.from({ length: 12 }, (_, i) => store.runs.create({ agent: 'solo', input: { i, big }, maxAttempts: 1 }, Date.now())));
    const trips = backend.stats.queries - backend.stats.notifies - before;
    // Three inputs of ~300 KB fit under 1 MiB: 12 runs take 4 statements, not 1.
    assert.ok(trips >= 4 && trips <= 6, `12 large runs in ${trips} statements`);
    const again = await store.runs.get(made[11]!.run.id);
    assert.deepEqual(again?.input, { i: 11, big });
  });

  it('one-statement commit: a head another writer moved, or one the hint has wrong, makes the statement fail whole, and the commit runs as a transaction', async (t) => {
    const { store, backend, schema } = await pgStore(t, { migrate: true, keepSchema: true });
    const other = await pgStore(t, { schema });
    const runs = [];
    for (let i = 0; i < 2; i++) runs.push((await store.runs.create({ agent: 'solo', input: null, maxAttempts: 1 }, Date.now())).run.id);
    const claimed = await store.tasks.claim({ workerId: 'w1', limit: 2, leaseMs: 60_000, now: Date.now() });
    assert.equal(claimed.length, 2);
    const [a, b] = claimed.map((c) => c.lease) as [Lease, Lease];
    // Another process (an operator's note, say) appends to a's stream after the claim: the hint is one behind.
    await other.store.audit.append([{ kind: 'operator.note', runId: claimed[0]!.task.runId, taskId: a.taskId, actor: 'op' }], Date.now());
    // b's hint is ahead of the database (it can never be, but the statement must not trust it).
    const head = backend.hints.heads.get(`task:${b.taskId}`)!;
    backend.hints.heads.set(`task:${b.taskId}`, { n: head.n + 5, hash: head.hash });
    for (const lease of [a, b]) {
      const before = backend.stats.queries;
      await store.commitTurn({ lease, now: Date.now(), turn: { n: 1, actions: [], results: [], output: 1 }, outcome: { kind: 'succeed', output: 1 }, audit: [] });
      assert.ok(backend.stats.queries - before > 1, 'fell back to a transaction');
    }
    assert.deepEqual(backend.hints.stats, { single: 0, fallbacks: 2 });
    for (const runId of runs) assert.equal((await store.runs.get(runId))?.state, 'succeeded');
    const kinds = (await store.audit.list({ runId: claimed[0]!.task.runId, limit: 100 })).map((e) => e.kind);
    assert.deepEqual(kinds, ['run.created', 'task.created', 'task.leased', 'task.running', 'operator.note', 'task.succeeded', 'run.succeeded']);
    const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(report.findings.length, 0, JSON.stringify(report.findings));
  });

  it('migrations: an empty schema is refused, then migrated once with one recorded row per version; a newer schema is refused', async (t) => {
    const { store, backend, schema } = await pgStore(t);
    // The highest shipped version (layers land with pre-assigned numbers, so there may be gaps).
    const known = backend.migrations.at(-1)!.version;
    assert.ok(known >= 3);
    assert.deepEqual(await store.schemaStatus(), { current: 0, known });
    await assert.rejects(store.assertSchemaCurrent(), SchemaOutdatedError);

    const before = Date.now();
    assert.deepEqual(await store.migrate(), { applied: backend.migrations.map((m) => m.version), version: known });
    await store.assertSchemaCurrent();
    const rows = await sql<{ version: number; name: string; applied_at: string }>(schema, 'SELECT version, name, applied_at FROM schema_migrations ORDER BY version');
    assert.deepEqual(
      rows.map((r) => [r.version, r.name]),
      backend.migrations.map((m) => [m.version, m.name]),
    );
    for (const r of rows) assert.ok(Number(r.applied_at) >= before);
    // The tables live in the URL's schema, not in public.
    const tables = await sql<{ n: string }>(schema, `SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'tasks'`, [schema]);
    assert.equal(Number(tables[0]!.n), 1);
    assert.deepEqual(await store.migrate(), { applied: [], version: known }, 'migrating again applies nothing');

    await sql(schema, 'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [known + 1, 'from_the_future', Date.now()]);
    const tooNew = (err: unknown) => err instanceof SchemaTooNewError && err.found === known + 1 && err.known === known;
    await assert.rejects(store.migrate(), tooNew);
    await assert.rejects(store.assertSchemaCurrent(), tooNew);
  });

  it('two migrators at once: the advisory lock serialises them, each migration is applied once', async (t) => {
    const a = await pgStore(t, { keepSchema: true });
    const b = await pgStore(t, { schema: a.schema });
    const known = a.backend.migrations.length;
    const [ra, rb] = await Promise.all([a.store.migrate(), b.store.migrate()]);
    assert.deepEqual([...ra.applied, ...rb.applied].sort(), a.backend.migrations.map((m) => m.version).sort(), 'every version applied by exactly one of them');
    const rows = await sql<{ version: number }>(a.schema, 'SELECT version FROM schema_migrations ORDER BY version');
    assert.equal(rows.length, known);
  });

  it('a migrator waits while another process holds the migration lock', async (t) => {
    const { store, backend, schema } = await pgStore(t);
    let done = false;
    await pgAdmin(PG_TEST_URL, async (admin) => {
      await admin.query('SELECT pg_advisory_lock($1, hashtext($2))', [0x5350494e, schema]);
      const migrating = store.migrate().then((r) => {
        done = true;
        return r;
      });
      // The migrator is provably waiting on the lock (its request is in pg_locks, not granted) — not just slow.
      await until('the migrator waits on the lock', async () => {
        const { rows } = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = $1::oid AND objid = hashtext($2)::oid`, [0x5350494e, schema]);
        return Number(rows[0]!.n) > 0;
      }, 30_000);
      assert.equal(done, false, 'blocked by the lock');
      await admin.query('SELECT pg_advisory_unlock($1, hashtext($2))', [0x5350494e, schema]);
      const result = await migrating;
      assert.equal(result.applied.length, backend.migrations.length);
    });
  });

  it('an unreachable server fails with a retryable STORE_UNAVAILABLE error, not a crash', async () => {
    const backend = new PgBackend({ url: 'postgres://postgres@127.0.0.1:1/test?schema=nowhere', reconnectBackoffMs: [20, 40] });
    const store = new SqlStore(backend);
    try {
      await assert.rejects(store.runs.get('run_x'), (err: unknown) => {
        assert.ok(err instanceof StoreUnavailableError, String(err));
        assert.equal(err.code, 'STORE_UNAVAILABLE');
        assert.equal(err.retryable, true);
        return true;
      });
      await assert.rejects(store.runs.create({ agent: 'a', input: null, maxAttempts: 1 }, Date.now()), StoreUnavailableError);
      // A statement that never got a connection was not sent: null, and the caller's transaction (with its retries) decides.
      let built = false;
      const none = await backend.commitStatement(() => {
        built = true;
        return { sql: 'SELECT 1', params: [] };
      });
      assert.deepEqual([none, built], [null, false]);
    } finally {
      await store.close();
    }
  });

  it('commitStatement: a statement runs as its own transaction; one the database refuses writes nothing and resolves to null', async (t) => {
    const { backend } = await pgStore(t, { migrate: true });
    const insert = `WITH ins AS (INSERT INTO audit_heads (stream, stream_seq, hash) VALUES (?, 1, 'h') RETURNING stream)`;
    assert.deepEqual(await backend.commitStatement<{ stream: string }>(() => ({ sql: `${insert} SELECT stream FROM ins`, params: ['probe:kept'] })), [{ stream: 'probe:kept' }]);
    assert.equal(await backend.commitStatement(() => ({ sql: `${insert} SELECT CAST((SELECT stream FROM ins) AS INTEGER)`, params: ['probe:refused'] })), null);
    const heads = await backend.read.all<{ stream: string }>(`SELECT stream FROM audit_heads WHERE stream LIKE 'probe:%' ORDER BY stream`);
    assert.deepEqual(heads.map((h) => h.stream), ['probe:kept']);
  });
});
