/**
 * `spine audit verify` throughput (issue 14): a SQLite store holding N chained events
 * (default 1,000,000) across many task streams, verified end to end; the bare limit in
 * the same run is reading the same rows, in the same pages, without hashing anything.
 *
 *   node bench/audit-verify.ts [--events 1000000] [--streams 20000] [--json]
 *
 * Also: sealing one checkpoint over all of them (Merkle root + Ed25519 signature).
 * Measurement only: a missed target (≥ 200k events/s) is reported, never fatal.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditKeysFromPem, generateAuditKeyPem, seal } from '../src/audit/checkpoint.ts';
import { verifyAudit } from '../src/audit/verify.ts';
import { openStore } from '../src/runtime/open-store.ts';
import type { AuditEntry } from '../src/store/store.ts';
import { benchArgs, wholeOption } from './harness.ts';
import { round } from './stats.ts';

const values = benchArgs('audit', { events: { type: 'string' }, streams: { type: 'string' }, json: { type: 'boolean' } });
const EVENTS = wholeOption('audit', 'events', values.events) ?? 1_000_000;
const STREAMS = wholeOption('audit', 'streams', values.streams) ?? 20_000;
const BATCH = 500;

const dir = mkdtempSync(join(tmpdir(), 'spine-bench-audit-'));
const store = openStore({ url: `sqlite:${join(dir, 'spine.db')}`, durability: 'fast' });
try {
  await store.migrate();
  const t0 = performance.now();
  const now = Date.now();
  for (let i = 0; i < EVENTS; i += BATCH) {
    const entries: AuditEntry[] = [];
    for (let j = i; j < Math.min(EVENTS, i + BATCH); j++) {
      const s = j % STREAMS;
      entries.push({ kind: 'effect.completed', runId: `run_${s}`, taskId: `task_${s}`, agent: 'bench', actor: 'wrk_bench', digest: 'ab'.repeat(16), data: { key: `run_${s}/task_${s}/1/${j}`, tool: 'notes.save', maybeRepeated: false } });
    }
    await store.audit.append(entries, now + i);
  }
  const writeMs = performance.now() - t0;

  // The bare limit: the same pages read back, nothing recomputed.
  const r0 = performance.now();
  let read = 0;
  let after: { stream: string; streamSeq: number } | null = null;
  for (;;) {
    const page = await store.audit.chainPage({ after, limit: 5_000 });
    read += page.length;
    if (page.length < 5_000) break;
    const last = page.at(-1)!;
    after = { stream: last.stream!, streamSeq: last.streamSeq! };
  }
  const readMs = performance.now() - r0;

  const v0 = performance.now();
  const report = await verifyAudit(store.audit, { publicKey: null, now: Date.now() });
  const verifyMs = performance.now() - v0;
  if (report.verdict !== 'clean' || report.events !== EVENTS) throw new Error(`bench store did not verify: ${report.verdict}, ${report.events} events`);

  const keys = auditKeysFromPem(generateAuditKeyPem());
  const s0 = performance.now();
  const sealed = await seal(store.audit, keys, Date.now());
  const sealMs = performance.now() - s0;
  const v1 = performance.now();
  const withCheckpoint = await verifyAudit(store.audit, { publicKey: keys.publicKey, now: Date.now() });
  const verifyCpMs = performance.now() - v1;

  const result = {
    events: EVENTS,
    streams: STREAMS,
    loadavg: loadavg().map((l) => round(l, 2)),
    appendEventsPerSec: Math.round(EVENTS / (writeMs / 1000)),
    readEventsPerSec: Math.round(read / (readMs / 1000)),
    verifyEventsPerSec: Math.round(EVENTS / (verifyMs / 1000)),
    verifyVsRead: round(verifyMs / readMs, 2),
    sealMs: Math.round(sealMs),
    sealedCount: sealed.sealed?.count ?? 0,
    verifyWithCheckpointEventsPerSec: Math.round(EVENTS / (verifyCpMs / 1000)),
    verdict: withCheckpoint.verdict,
    target: '≥ 200,000 events/s (verify, SQLite)',
  };
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`audit verify over ${EVENTS.toLocaleString()} events in ${STREAMS.toLocaleString()} streams (load ${result.loadavg.join(' ')})`);
    console.log(`  append (chained, batches of ${BATCH})     ${result.appendEventsPerSec.toLocaleString()} events/s`);
    console.log(`  bare read of the same pages            ${result.readEventsPerSec.toLocaleString()} events/s`);
    console.log(`  verify (chains)                        ${result.verifyEventsPerSec.toLocaleString()} events/s  (${result.verifyVsRead}× the bare read; target ≥ 200,000/s — ${result.verifyEventsPerSec >= 200_000 ? 'met' : 'missed'})`);
    console.log(`  seal one checkpoint over all           ${result.sealMs} ms`);
    console.log(`  verify (chains + checkpoint root)      ${result.verifyWithCheckpointEventsPerSec.toLocaleString()} events/s, ${result.verdict}`);
  }
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
