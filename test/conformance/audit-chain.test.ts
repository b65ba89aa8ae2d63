// The tamper-evident audit trail on both backends (docs/audit.md): every event is
// chained in its stream in the transaction of its change; `verifyAudit` recomputes the
// chains and the signed checkpoints' roots and names each kind of tampering done to a
// real database from outside Spine — an edited column, a deleted event (in the middle,
// and at a stream's end where only a checkpoint can tell), two events reordered, a
// forged event inserted, an altered checkpoint — and a clean store, pruned or not, verifies.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { chainHash } from '../../src/audit/chain.ts';
import { auditKeysFromPem, generateAuditKeyPem, seal, type AuditKeys } from '../../src/audit/checkpoint.ts';
import { verifyAudit, type VerifyReport } from '../../src/audit/verify.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import type { Store } from '../../src/store/store.ts';
import { forge, tempStore } from '../helpers.ts';
import { AuditSealer } from '../../src/audit/sealer.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { clearSecretsForTests, registerSecret } from '../../src/core/redact.ts';
import { silentLogger } from '../../src/core/log.ts';

const keys: AuditKeys = auditKeysFromPem(generateAuditKeyPem());

function envelope(text: string): Envelope {
  return { channel: 'api', account: 'default', peer: { kind: 'dm', id: 'kim' }, parentPeer: null, sender: null, thread: null, text, data: null, idempotencyKey: `key-${randomUUID()}`, replyTo: null };
}

/** A store with a few runs worked through (run, task and shared streams), optionally sealed. */
async function populated(t: TestContext, runs = 3): Promise<{ store: Store; runIds: string[] }> {
  const { store, cleanup } = await tempStore();
  t.after(cleanup);
  const runIds: string[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await store.acceptEnvelope(
      {
        envelope: envelope(`hello ${i}`),
        envelopeId: `env_${randomUUID()}`,
        route: { ok: true, agent: 'a', kind: 'work', decision: { binding: 'b1', why: 'test' }, session: { key: `agent:a:isolated:${randomUUID()}`, agent: 'a', resetBefore: 0 }, input: { i }, maxAttempts: 1 },
        actor: 'test',
      },
      Date.now(),
    );
    runIds.push(r.run!.id);
  }
  for (let i = 0; i < runs; i++) {
    const [claimed] = await store.tasks.claim({ workerId: 'w', limit: 1, leaseMs: 60_000, now: Date.now() });
    assert.ok(claimed);
    await store.commitTurn({
      lease: claimed.lease,
      now: Date.now(),
      turn: { n: 1, actions: [], results: [], output: `out ${i}` },
      outcome: { kind: 'succeed', output: `out ${i}` },
      audit: [{ kind: 'policy.decision', runId: claimed.task.runId, taskId: claimed.task.id, agent: 'a', data: { ruleId: 'r1', decision: 'allow' } }],
    });
  }
  await store.audit.append([{ kind: 'grant.standing', actor: 'token:ops', data: { grant: 'g1' } }], Date.now());
  return { store, runIds };
}

const verify = (store: Store, opts: { runId?: string } = {}): Promise<VerifyReport> => verifyAudit(store.audit, { publicKey: keys.publicKey, now: Date.now(), ...opts });

interface Row {
  seq: number;
  stream: string;
  stream_seq: number;
}

async function streamRows(store: Store, stream: string): Promise<Row[]> {
  const { rows } = await forge<Row>(store, 'SELECT seq, stream, stream_seq FROM audit_events WHERE stream = ? ORDER BY stream_seq', [stream]);
  return rows.map((r) => ({ seq: Number(r.seq), stream: r.stream, stream_seq: Number(r.stream_seq) }));
}

async function aTaskStream(store: Store): Promise<Row[]> {
  const { rows } = await forge<{ stream: string }>(store, "SELECT stream FROM audit_events WHERE stream LIKE 'task:%' ORDER BY seq LIMIT 1");
  const rs = await streamRows(store, rows[0]!.stream);
  assert.ok(rs.length >= 4, `a task stream with a few events (${rs.length})`);
  return rs;
}

describe('the audit hash chain', () => {
  it('chains every event in its stream, and a clean store verifies (whole store and one run)', async (t) => {
    const { store, runIds } = await populated(t);
    const { rows } = await forge<{ n: number }>(store, 'SELECT COUNT(*) AS n FROM audit_events WHERE hash IS NULL OR stream IS NULL');
    assert.equal(Number(rows[0]!.n), 0);
    const envelopeEvents = await forge<{ stream: string }>(store, "SELECT stream FROM audit_events WHERE kind = 'envelope.received'");
    assert.ok(envelopeEvents.rows.every((r) => r.stream.startsWith('run:')), "a routed envelope's events are in its run's stream");
    const report = await verify(store);
    assert.equal(report.verdict, 'clean', JSON.stringify(report.findings));
    assert.ok(report.events > 10);
    const one = await verify(store, { runId: runIds[0]! });
    assert.equal(one.verdict, 'clean');
    assert.ok(one.events > 0 && one.events < report.events);
  });

  it('names an edit to any column of an event', async (t) => {
    const { store } = await populated(t);
    const rows = await aTaskStream(store);
    const target = rows[1]!;
    const edits: Array<[string, string | number | null]> = [
      ['at', 12345],
      ['kind', 'approval.decided'],
      ['run_id', 'run_forged'],
      ['task_id', 'task_forged'],
      ['agent', 'mallory'],
      ['actor', 'token:ceo'],
      ['digest', 'deadbeef'],
      ['data', '{"forged":true}'],
      ['stream', 'task:elsewhere'],
      ['stream_seq', 1000],
      ['prev_hash', 'f'.repeat(64)],
      ['hash', 'e'.repeat(64)],
    ];
    for (const [column, value] of edits) {
      const { rows: before } = await forge<Record<string, string | number | null>>(store, `SELECT ${column} AS v FROM audit_events WHERE seq = ?`, [target.seq]);
      await forge(store, `UPDATE audit_events SET ${column} = ? WHERE seq = ?`, [value, target.seq]);
      const report = await verify(store);
      assert.equal(report.verdict, 'tampered', `${column} edited`);
      assert.equal(report.first?.kind, 'edited', `${column}: ${JSON.stringify(report.first)}`);
      assert.equal(report.first?.seq, target.seq, column);
      await forge(store, `UPDATE audit_events SET ${column} = ? WHERE seq = ?`, [before[0]!.v ?? null, target.seq]);
      assert.equal((await verify(store)).verdict, 'clean', `${column} restored`);
    }
  });

  it('names an event deleted in the middle of a stream, and one deleted at its end', async (t) => {
    const { store } = await populated(t);
    const rows = await aTaskStream(store);
    await forge(store, 'DELETE FROM audit_events WHERE seq = ?', [rows[1]!.seq]);
    const middle = await verify(store);
    assert.equal(middle.first?.kind, 'deleted');
    assert.equal(middle.first?.seq, rows[2]!.seq, 'named at the event after the gap');
    assert.match(middle.first.message, /1 deleted/);

    const { store: other } = await populated(t);
    const tail = await aTaskStream(other);
    await forge(other, 'DELETE FROM audit_events WHERE seq = ?', [tail.at(-1)!.seq]);
    const report = await verify(other);
    assert.equal(report.first?.kind, 'deleted', 'the head still names the deleted last event');
    assert.equal(report.first?.stream, tail[0]!.stream);
  });

  it('a deletion at the end with the head rewritten too is caught by the checkpoint', async (t) => {
    const { store } = await populated(t);
    assert.ok((await seal(store.audit, keys, Date.now())).sealed);
    const rows = await aTaskStream(store);
    const last = rows.at(-1)!;
    const prev = rows.at(-2)!;
    const { rows: h } = await forge<{ hash: string }>(store, 'SELECT hash FROM audit_events WHERE seq = ?', [prev.seq]);
    await forge(store, 'DELETE FROM audit_events WHERE seq = ?', [last.seq]);
    await forge(store, 'UPDATE audit_heads SET stream_seq = ?, hash = ? WHERE stream = ?', [prev.stream_seq, h[0]!.hash, prev.stream]);
    const report = await verify(store);
    assert.equal(report.verdict, 'tampered');
    assert.equal(report.first?.kind, 'deleted');
    assert.equal(report.first?.checkpoint, 1);
  });

  it('names two events reordered', async (t) => {
    const { store } = await populated(t);
    const rows = await aTaskStream(store);
    const [a, b] = [rows[1]!.seq, rows[2]!.seq];
    await forge(store, 'UPDATE audit_events SET seq = ? WHERE seq = ?', [-1, a]);
    await forge(store, 'UPDATE audit_events SET seq = ? WHERE seq = ?', [a, b]);
    await forge(store, 'UPDATE audit_events SET seq = ? WHERE seq = ?', [b, -1]);
    const report = await verify(store);
    assert.equal(report.first?.kind, 'reordered', JSON.stringify(report.first));
  });

  it('names a forged event inserted, plain or with a well-computed hash', async (t) => {
    const { store, runIds } = await populated(t);
    await forge(store, "INSERT INTO audit_events (at, kind, run_id, actor, data) VALUES (?, 'approval.decided', ?, 'token:ceo', '{\"approved\":true}')", [Date.now(), runIds[0]!]);
    const plain = await verify(store);
    assert.equal(plain.first?.kind, 'inserted');
    assert.match(plain.first.message, /approval\.decided/);

    const { store: other } = await populated(t);
    const rows = await aTaskStream(other);
    const last = rows.at(-1)!;
    const { rows: h } = await forge<{ hash: string }>(other, 'SELECT hash FROM audit_events WHERE seq = ?', [last.seq]);
    const body = { stream: last.stream, streamSeq: last.stream_seq + 1, at: Date.now(), kind: 'effect.completed', runId: null, taskId: null, agent: null, actor: 'token:ceo', digest: null, data: null };
    await forge(other, 'INSERT INTO audit_events (at, kind, actor, stream, stream_seq, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)', [
      body.at,
      body.kind,
      body.actor,
      body.stream,
      body.streamSeq,
      h[0]!.hash,
      chainHash(body, h[0]!.hash),
    ]);
    const clever = await verify(other);
    assert.equal(clever.first?.kind, 'inserted', JSON.stringify(clever.findings));
  });

  it('names an altered checkpoint, and one signed by another key', async (t) => {
    const { store } = await populated(t);
    assert.ok((await seal(store.audit, keys, Date.now())).sealed);
    await store.audit.append([{ kind: 'grant.revoked', actor: 'token:ops', data: { grant: 'g1' } }], Date.now());
    assert.ok((await seal(store.audit, keys, Date.now())).sealed);
    assert.equal((await verify(store)).verdict, 'clean');

    await forge(store, 'UPDATE audit_checkpoints SET count = count + 1 WHERE n = 1');
    const altered = await verify(store);
    assert.equal(altered.first?.kind, 'forged-checkpoint');
    assert.equal(altered.first?.checkpoint, 1);
    await forge(store, 'UPDATE audit_checkpoints SET count = count - 1 WHERE n = 1');

    const mallory = auditKeysFromPem(generateAuditKeyPem());
    await forge(store, 'DELETE FROM audit_checkpoints WHERE n = 2');
    assert.ok((await seal(store.audit, mallory, Date.now())).sealed);
    const resigned = await verify(store);
    assert.equal(resigned.first?.kind, 'forged-checkpoint');
    assert.match(resigned.first.message, /not by the configured audit key/);

    const keyless = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
    assert.equal(keyless.verdict, 'unverifiable', 'without a key the signatures cannot be checked');
  });

  it('pruning sealed events keeps the checkpoints, and the store still verifies', async (t) => {
    const { store } = await populated(t, 2);
    const first = await seal(store.audit, keys, Date.now());
    assert.ok(first.sealed);
    await populatedMore(store);
    assert.ok((await seal(store.audit, keys, Date.now())).sealed);
    const deleted = await store.audit.prune(first.sealed.toSeq);
    assert.ok(deleted > 0);
    const report = await verify(store);
    assert.equal(report.verdict, 'clean', JSON.stringify(report.findings));
    assert.equal(report.checkpoints, 2);

    // Everything sealed pruned: the newest event stays, new events still chain and seal.
    const last = (await store.audit.checkpoints()).at(-1)!;
    await store.audit.prune(last.toSeq);
    await populatedMore(store);
    assert.ok((await seal(store.audit, keys, Date.now())).sealed);
    const after = await verify(store);
    assert.equal(after.verdict, 'clean', JSON.stringify(after.findings));
  });

  it('an event carrying a registered secret is stored masked, and hashed as stored: it verifies', async (t) => {
    const { store } = await populated(t, 1);
    const secret = `s3cret-${randomUUID()}`;
    registerSecret(secret);
    t.after(clearSecretsForTests);
    await store.audit.append([{ kind: 'effect.failed', actor: `token:${secret}`, data: { error: `upstream said ${secret}` } }], Date.now());
    const { rows } = await forge<{ n: number }>(store, 'SELECT COUNT(*) AS n FROM audit_events WHERE data LIKE ? OR actor LIKE ?', [`%${secret}%`, `%${secret}%`]);
    assert.equal(Number(rows[0]!.n), 0, 'the secret is not stored');
    const report = await verify(store);
    assert.equal(report.verdict, 'clean', JSON.stringify(report.findings));
  });

  it('one sealer wins each checkpoint number', async (t) => {
    const { store } = await populated(t, 1);
    const outcomes = await Promise.all([seal(store.audit, keys, Date.now()), seal(store.audit, keys, Date.now()), seal(store.audit, keys, Date.now())]);
    const sealed = outcomes.filter((o) => o.sealed);
    assert.ok(sealed.length >= 1);
    assert.equal((await store.audit.checkpoints()).length, new Set(sealed.map((o) => o.sealed!.n)).size);
    assert.equal((await verify(store)).verdict, 'clean');
  });
});

describe('the sealer', () => {
  it('seals with the configured key and hands each checkpoint to the file witness; no key, no checkpoint', async (t) => {
    const { store } = await populated(t, 1);
    const { dir, cleanup } = await tempStore();
    t.after(cleanup);
    const file = join(dir, 'witness.jsonl');
    let current: AuditKeys | null = null;
    const sealer = new AuditSealer({ audit: store.audit, keys: () => current, everyMs: () => 60_000, witness: () => ({ file, url: null }), clock: new ManualClock(Date.now()), log: silentLogger });
    assert.equal(await sealer.sealOnce(), null, 'no key: nothing sealed');
    current = keys;
    const cp = await sealer.sealOnce();
    assert.ok(cp);
    assert.equal(await sealer.sealOnce(), null, 'nothing new to seal');
    const witnessed = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { n: number; root: string });
    assert.deepEqual(witnessed.map((w) => [w.n, w.root]), [[cp.n, cp.root]]);
  });
});

/** More events in the streams that exist, and new ones. */
async function populatedMore(store: Store): Promise<void> {
  await store.audit.append([{ kind: 'grant.revoked', actor: 'token:ops', data: { grant: 'g1' } }], Date.now());
  const { rows } = await forge<{ stream: string; task_id: string; run_id: string }>(store, "SELECT stream, task_id, run_id FROM audit_events WHERE stream LIKE 'task:%' LIMIT 1");
  await store.audit.append([{ kind: 'operator.note', runId: rows[0]!.run_id, taskId: rows[0]!.task_id, data: { note: 'later' } }], Date.now());
}
