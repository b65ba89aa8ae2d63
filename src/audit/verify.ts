import type { KeyObject } from 'node:crypto';
import type { AuditVerdict, TamperKind } from '../core/states.ts';
import type { AuditStore, ChainedEvent, Checkpoint, StreamHead } from '../store/audit.ts';
import { chainHashOfText, GENESIS } from './chain.ts';
import { checkpointHash, checkpointSignatureValid, keyIdOf } from './checkpoint.ts';
import { leafHash, merkleRoot } from './merkle.ts';

/**
 * `spine audit verify`: recomputes every stream's chain and every checkpoint's
 * signature, chain and Merkle root, and names the first bad event and what was done
 * to it. Streams are walked in (stream, streamSeq) order, page by page.
 */

export interface Finding {
  kind: TamperKind;
  /** The event's global seq (null: a missing event, or a checkpoint). */
  seq: number | null;
  stream: string | null;
  streamSeq: number | null;
  checkpoint: number | null;
  message: string;
}

export interface VerifyReport {
  verdict: AuditVerdict;
  /** Events whose hash was recomputed. */
  events: number;
  streams: number;
  checkpoints: number;
  /** Events written before the chain began (not verifiable). */
  legacy: number;
  /** The first finding, by seq (then stream position). */
  first: Finding | null;
  findings: Finding[];
  /** Why the verdict is unverifiable, when it is. */
  unverifiable: string[];
  scope: { runId: string | null; since: number | null };
  at: number;
}

export interface VerifyOptions {
  runId?: string;
  /** Only events at or after this time (ms); their chains are checked from the first such event on. */
  since?: number;
  /** The trusted audit public key; without it checkpoint signatures cannot be checked. */
  publicKey: KeyObject | null;
  now: number;
}

const PAGE = 5_000;
const MAX_FINDINGS = 100;

interface Walk {
  n: number;
  hash: string;
  /** After an edit: the hash the event had before it (the next event may link to either). */
  alt: string | null;
  seq: number;
  last: ChainedEvent | null;
}

export async function verifyAudit(audit: AuditStore, opts: VerifyOptions): Promise<VerifyReport> {
  const findings: Finding[] = [];
  const add = (f: Finding): void => {
    if (findings.length < MAX_FINDINGS) findings.push(f);
  };
  const unverifiable: string[] = [];
  const state = await audit.chainState();
  const anchors = new Map((await audit.anchors()).map((a) => [a.stream, a]));
  const heads = new Map((await audit.heads()).map((h) => [h.stream, h]));
  const runSeqs: number[] = [];
  let events = 0;
  let streams = 0;

  const finishStream = (stream: string, w: Walk): void => {
    streams++;
    const head = heads.get(stream);
    heads.delete(stream);
    if (!w.last) return;
    if (!head) {
      add({ kind: 'deleted', seq: null, stream, streamSeq: null, checkpoint: null, message: `stream ${stream} has events but no head record` });
    } else if (head.streamSeq > w.n) {
      add({ kind: 'deleted', seq: null, stream, streamSeq: w.n + 1, checkpoint: null, message: `stream ${stream} ends at event ${w.n}, its head says ${head.streamSeq}: the last ${head.streamSeq - w.n} deleted` });
    } else if (head.streamSeq < w.n) {
      add({ kind: 'inserted', seq: w.last.seq, stream, streamSeq: w.n, checkpoint: null, message: `stream ${stream} has events after its head (${head.streamSeq})` });
    } else if (head.hash !== w.hash && head.hash !== w.alt) {
      add({ kind: 'edited', seq: w.last.seq, stream, streamSeq: w.n, checkpoint: null, message: `stream ${stream}'s last event does not match its head` });
    }
  };

  const step = (e: ChainedEvent, w: Walk): void => {
    const stream = e.stream!;
    const n = e.streamSeq!;
    if (opts.runId) runSeqs.push(e.seq);
    if (opts.since !== undefined && e.at < opts.since) {
      Object.assign(w, { n, hash: e.hash ?? '', alt: null, seq: e.seq, last: e });
      return;
    }
    events++;
    const recomputed = chainHashOfText(
      { stream, streamSeq: n, at: e.at, kind: e.kind, runId: e.runId ?? null, taskId: e.taskId ?? null, agent: e.agent ?? null, actor: e.actor ?? null, digest: e.digest ?? null },
      e.dataText,
      e.prevHash ?? '',
    );
    const at = { seq: e.seq, stream, streamSeq: n, checkpoint: null };
    if (recomputed !== e.hash) add({ ...at, kind: 'edited', message: `event seq ${e.seq} (${stream}#${n}, ${e.kind}) does not hash to its recorded hash: edited` });
    else if (e.seq < w.seq) add({ ...at, kind: 'reordered', message: `event ${stream}#${n} (seq ${e.seq}) comes after seq ${w.seq} in its stream: events were reordered` });
    else if (n > w.n + 1) add({ ...at, kind: 'deleted', message: `stream ${stream} skips from event ${w.n} to ${n}: ${n - w.n - 1} deleted before seq ${e.seq}` });
    else if (n <= w.n) add({ ...at, kind: 'inserted', message: `stream ${stream} has event ${n} twice (seq ${e.seq})` });
    else if (e.prevHash !== w.hash && e.prevHash !== w.alt) add({ ...at, kind: 'inserted', message: `event seq ${e.seq} (${stream}#${n}) does not link to the event before it: inserted` });
    w.alt = recomputed !== e.hash ? recomputed : null;
    Object.assign(w, { n, hash: e.hash ?? '', seq: e.seq, last: e });
  };

  const startOf = (stream: string): Walk => {
    const a: StreamHead | undefined = anchors.get(stream);
    return { n: a?.streamSeq ?? 0, hash: a?.hash ?? GENESIS, alt: null, seq: 0, last: null };
  };

  if (opts.runId) {
    for (const stream of await audit.streamsOfRun(opts.runId)) {
      const w = startOf(stream);
      let after: { stream: string; streamSeq: number } | null = null;
      for (;;) {
        const page = await audit.chainPage({ after, stream, limit: PAGE });
        for (const e of page) step(e, w);
        if (page.length < PAGE) break;
        after = { stream, streamSeq: page.at(-1)!.streamSeq! };
      }
      finishStream(stream, w);
    }
  } else {
    let current: string | null = null;
    let w: Walk = startOf('');
    let after: { stream: string; streamSeq: number } | null = null;
    for (;;) {
      const page = await audit.chainPage({ after, limit: PAGE });
      for (const e of page) {
        if (e.stream !== current) {
          if (current !== null) finishStream(current, w);
          current = e.stream;
          w = startOf(e.stream!);
        }
        step(e, w);
      }
      if (page.length < PAGE) break;
      const last = page.at(-1)!;
      after = { stream: last.stream!, streamSeq: last.streamSeq! };
    }
    if (current !== null) finishStream(current, w);
    // Heads whose stream has no events left: all of them deleted (unless pruned).
    for (const [stream, head] of heads) {
      const anchor = anchors.get(stream);
      if (anchor && anchor.streamSeq >= head.streamSeq) continue;
      add({ kind: 'deleted', seq: null, stream, streamSeq: (anchor?.streamSeq ?? 0) + 1, checkpoint: null, message: `stream ${stream}'s events ${(anchor?.streamSeq ?? 0) + 1}–${head.streamSeq} are all gone` });
    }
  }

  // Rows without a chain position after the chain began were not written by Spine.
  let legacy = 0;
  for (let afterSeq = 0; ; ) {
    const page = await audit.unchained({ afterSeq, limit: PAGE });
    for (const e of page) {
      if (opts.runId && e.runId !== opts.runId) continue;
      if (opts.since !== undefined && e.at < opts.since) continue;
      if (e.seq <= state.legacyUntil && e.stream === null && e.hash === null) legacy++;
      else add({ kind: 'inserted', seq: e.seq, stream: e.stream, streamSeq: e.streamSeq, checkpoint: null, message: `event seq ${e.seq} (${e.kind}) has no place in any chain: inserted` });
    }
    if (page.length < PAGE) break;
    afterSeq = page.at(-1)!.seq;
  }
  if (legacy > 0) unverifiable.push(`${legacy} events predate the hash chain`);

  const checkpoints = await audit.checkpoints();
  if (checkpoints.length > 0 && !opts.publicKey) unverifiable.push('no audit key is configured: checkpoint signatures were not checked');
  await verifyCheckpoints(audit, checkpoints, state, opts, runSeqs, add);

  findings.sort((a, b) => (a.seq ?? Number.MAX_SAFE_INTEGER) - (b.seq ?? Number.MAX_SAFE_INTEGER));
  const verdict: AuditVerdict = findings.length > 0 ? 'tampered' : unverifiable.length > 0 ? 'unverifiable' : 'clean';
  return {
    verdict,
    events,
    streams,
    checkpoints: checkpoints.length,
    legacy,
    first: findings[0] ?? null,
    findings,
    unverifiable,
    scope: { runId: opts.runId ?? null, since: opts.since ?? null },
    at: opts.now,
  };
}

async function verifyCheckpoints(
  audit: AuditStore,
  checkpoints: readonly Checkpoint[],
  state: { legacyUntil: number; prunedUntil: number },
  opts: VerifyOptions,
  runSeqs: readonly number[],
  add: (f: Finding) => void,
): Promise<void> {
  const keyId = opts.publicKey ? keyIdOf(opts.publicKey) : null;
  let prevHash = GENESIS;
  let prevTo = state.legacyUntil;
  let expectedN = 1;
  for (const cp of checkpoints) {
    const forged = (message: string): void => add({ kind: 'forged-checkpoint', seq: null, stream: null, streamSeq: null, checkpoint: cp.n, message: `checkpoint ${cp.n}: ${message}` });
    if (cp.n !== expectedN) forged(`expected checkpoint ${expectedN} (a checkpoint is missing)`);
    else if (checkpointHash(cp) !== cp.hash) forged('its hash does not match its contents');
    else if (opts.publicKey && cp.keyId !== keyId) forged(`signed by key ${cp.keyId}, not by the configured audit key ${keyId}`);
    else if (opts.publicKey && !checkpointSignatureValid(cp, opts.publicKey)) forged('its signature is not valid');
    else if (cp.prevHash !== prevHash) forged('it does not link to the checkpoint before it');
    else if (cp.fromSeq !== prevTo) forged(`its range starts at ${cp.fromSeq}, the checkpoint before ended at ${prevTo}`);
    prevHash = cp.hash;
    prevTo = cp.toSeq;
    expectedN = cp.n + 1;
    // Pruned ranges (even in part) keep only their checkpoint; a run's verification recomputes only the roots its events are under.
    if (cp.fromSeq < state.prunedUntil) continue;
    if (opts.runId && !runSeqs.some((s) => s > cp.fromSeq && s <= cp.toSeq)) continue;
    if (opts.since !== undefined && cp.at < opts.since) continue;
    const leaves = await audit.leaves(cp.fromSeq, cp.toSeq);
    const root = merkleRoot(leaves.map(leafHash));
    if (root === cp.root && leaves.length === cp.count) continue;
    const where = `events in seq (${cp.fromSeq}, ${cp.toSeq}]`;
    const base = { seq: null, stream: null, streamSeq: null, checkpoint: cp.n };
    if (leaves.length < cp.count) add({ ...base, kind: 'deleted', message: `checkpoint ${cp.n} sealed ${cp.count} ${where}, ${leaves.length} remain: ${cp.count - leaves.length} deleted` });
    else if (leaves.length > cp.count) add({ ...base, kind: 'inserted', message: `checkpoint ${cp.n} sealed ${cp.count} ${where}, there are ${leaves.length}: inserted` });
    else add({ ...base, kind: 'edited', message: `the ${where} no longer hash to checkpoint ${cp.n}'s root: edited or reordered` });
  }
}
