// `spine audit` and `spine why` as a user runs them, on the project `spine init`
// scaffolds (lead hands off to helper and calls the notes.save tool): the trail
// verifies (exit 0), `why` walks from the tool's effect back to the envelope and its
// binding, an export verifies offline with a verifier that knows nothing of Spine,
// a proof is printed, and an edit to the SQLite file is named (exit 6) and makes
// `spine doctor` unhealthy. Without a key the checkpoints are unverifiable (exit 7).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const OFFLINE = fileURLToPath(new URL('./fixtures/offline-verify.ts', import.meta.url));

function run(cwd: string, file: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.SPINE_DB;
  delete env.SPINE_CONFIG;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('spine audit and spine why', () => {
  let dir: string;
  let runId: string;
  const spine = (args: string[]) => run(dir, MAIN, args);
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spine-audit-'));
    assert.equal((await spine(['init'])).code, 0);
    const r = await spine(['up', '--port', '0', '--send', 'lead', '--text', 'audit me please', '--exit', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const db = new DatabaseSync(join(dir, '.spine', 'spine.db'));
    runId = (db.prepare('SELECT id FROM runs ORDER BY created_at LIMIT 1').get() as { id: string }).id;
    db.close();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('init made a signing key outside the database; seal and verify are clean', async () => {
    const pem = readFileSync(join(dir, '.spine', 'audit-signing.key'), 'utf8');
    assert.equal(createPrivateKey(pem).asymmetricKeyType, 'ed25519');
    const db = readFileSync(join(dir, '.spine', 'spine.db'));
    assert.ok(!db.includes(Buffer.from(pem.split('\n')[1]!)), 'the key is not in the database');
    const sealed = await spine(['audit', 'seal', '--json']);
    assert.equal(sealed.code, 0, sealed.stderr);
    const v = await spine(['audit', 'verify']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /CLEAN/);
    const one = await spine(['audit', 'verify', '--run', runId, '--json']);
    assert.equal((JSON.parse(one.stdout) as { verdict: string }).verdict, 'clean');
  });

  it('why walks from the tool effect back to the envelope and its binding', async () => {
    const effects = new DatabaseSync(join(dir, '.spine', 'spine.db'));
    const key = (effects.prepare("SELECT key FROM effects WHERE tool = 'notes.save'").get() as { key: string }).key;
    const helperTask = (effects.prepare("SELECT id FROM tasks WHERE agent = 'helper'").get() as { id: string }).id;
    effects.close();
    const r = await spine(['why', key, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const g = JSON.parse(r.stdout) as { steps: Array<{ kind: string; events: Array<{ seq: number; kind: string; verified: boolean }> }>; verified: boolean };
    assert.deepEqual(
      g.steps.map((s) => s.kind),
      ['effect', 'action', 'turn', 'task', 'run', 'envelope', 'binding'],
    );
    assert.ok(g.verified);
    const kinds = g.steps.flatMap((s) => s.events.map((e) => e.kind));
    for (const k of ['effect.started', 'effect.completed', 'turn.decided', 'turn.answered', 'task.created', 'run.created', 'envelope.received', 'route.decided']) assert.ok(kinds.includes(k), k);
    assert.ok(g.steps.every((s) => s.events.every((e) => e.verified && e.seq > 0)));

    const child = await spine(['why', helperTask]);
    assert.equal(child.code, 0, child.stderr);
    assert.match(child.stdout, /← handoff/);
    assert.match(child.stdout, /action\.handoff/);
    assert.match(child.stdout, /← binding/);
    assert.equal((await spine(['why', 'run_nope'])).code, 3);
  });

  it('an export verifies offline without Spine; a proof is printed', async () => {
    const out = join(dir, 'run.jsonl');
    const e = await spine(['audit', 'export', '--run', runId, '--out', out]);
    assert.equal(e.code, 0, e.stderr);
    const pub = join(dir, 'audit.pub');
    writeFileSync(pub, createPublicKey(readFileSync(join(dir, '.spine', 'audit-signing.key'), 'utf8')).export({ type: 'spki', format: 'pem' }));
    const offline = await run(dir, OFFLINE, [out, pub]);
    assert.equal(offline.code, 0, offline.stdout + offline.stderr);
    const [, events, proofs] = offline.stdout.trim().split(' ');
    assert.ok(Number(events) > 10 && Number(proofs) === Number(events), offline.stdout);

    // One byte changed in the export: the offline verifier catches it.
    writeFileSync(out, readFileSync(out, 'utf8').replace('"kind":"effect.completed"', '"kind":"effect.complete"'));
    assert.equal((await run(dir, OFFLINE, [out, pub])).code, 1);

    const p = await spine(['audit', 'proof', '3']);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /checkpoint 1/);
  });

  it('tail prints the newest events as JSON lines; prune keeps the checkpoints and verify passes', async () => {
    const tail = await spine(['audit', 'tail', '--once', '--limit', '3', '--json']);
    assert.equal(tail.code, 0, tail.stderr);
    const lines = tail.stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; kind: string });
    assert.equal(lines.length, 3);
    assert.ok(lines[0]!.seq < lines[2]!.seq);
    const copy = join(dir, 'pruned.db');
    writeFileSync(copy, readFileSync(join(dir, '.spine', 'spine.db')));
    const pruned = await spine(['audit', 'prune', '--checkpoint', '1', '--db', `sqlite:${copy}`, '--json']);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.ok((JSON.parse(pruned.stdout) as { deleted: number }).deleted > 10);
    const v = await spine(['audit', 'verify', '--db', `sqlite:${copy}`]);
    assert.equal(v.code, 0, v.stdout);
  });

  it('an edit in the database file is named (exit 6) and doctor fails; without a key: unverifiable (exit 7)', async () => {
    const db = new DatabaseSync(join(dir, '.spine', 'spine.db'));
    const row = db.prepare("SELECT seq, actor FROM audit_events WHERE kind = 'effect.completed'").get() as { seq: number; actor: string };
    db.prepare("UPDATE audit_events SET actor = 'token:ceo' WHERE seq = ?").run(row.seq);
    db.close();
    const v = await spine(['audit', 'verify']);
    assert.equal(v.code, 6, v.stdout);
    assert.match(v.stdout, new RegExp(`edited at seq ${row.seq}`));
    const doctor = await spine(['doctor', '--json']);
    assert.notEqual(doctor.code, 0);
    assert.equal((JSON.parse(doctor.stdout) as { checks: Array<{ name: string; status: string }> }).checks.find((c) => c.name === 'audit')?.status, 'fail');

    const bare = mkdtempSync(join(tmpdir(), 'spine-audit-nokey-'));
    try {
      const nokey = await run(bare, MAIN, ['audit', 'verify', '--db', `sqlite:${join(dir, '.spine', 'spine.db')}`]);
      assert.equal(nokey.code, 6, 'tampering is found without a key too');
      const db2 = new DatabaseSync(join(dir, '.spine', 'spine.db'));
      db2.prepare('UPDATE audit_events SET actor = ? WHERE seq = ?').run(row.actor, row.seq);
      db2.close();
      const restored = await run(bare, MAIN, ['audit', 'verify', '--db', `sqlite:${join(dir, '.spine', 'spine.db')}`]);
      assert.equal(restored.code, 7, restored.stdout);
      assert.match(restored.stdout, /no audit key is configured/);
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });
});
