import type { Json } from '../core/types.ts';
import type { AuditStore, ChainedEvent, Checkpoint } from '../store/audit.ts';
import { publicKeyPem, type AuditKeys } from './checkpoint.ts';
import { inclusionProof, leafHash } from './merkle.ts';

/** An inclusion proof: the event's leaf is leaf `index` of checkpoint `checkpoint`'s `size` leaves. */
export interface InclusionProof {
  checkpoint: number;
  index: number;
  size: number;
  /** RFC 6962 audit path, bottom-up, hex. */
  path: string[];
  root: string;
}

export const EXPORT_FORMAT = 'spine-audit-export/1';

/** Proofs for events sealed by one checkpoint, computing its leaves once. */
async function proofsIn(audit: AuditStore, cp: Checkpoint, seqs: readonly number[]): Promise<Map<number, InclusionProof>> {
  const leaves = await audit.leaves(cp.fromSeq, cp.toSeq);
  const hashes = leaves.map(leafHash);
  const index = new Map(leaves.map((l, i) => [l.seq, i]));
  const out = new Map<number, InclusionProof>();
  for (const seq of seqs) {
    const i = index.get(seq);
    if (i !== undefined) out.set(seq, { checkpoint: cp.n, index: i, size: leaves.length, path: inclusionProof(hashes, i), root: cp.root });
  }
  return out;
}

const covering = (cps: readonly Checkpoint[], seq: number): Checkpoint | undefined => cps.find((c) => seq > c.fromSeq && seq <= c.toSeq);

/** The proof that event `seq` is under a signed checkpoint; null when it is not sealed yet. */
export async function proofOf(audit: AuditStore, seq: number): Promise<{ event: ChainedEvent; checkpoint: Checkpoint | null; proof: InclusionProof | null } | null> {
  const event = await audit.event(seq);
  if (!event) return null;
  const cp = covering(await audit.checkpoints(), seq);
  if (!cp) return { event, checkpoint: null, proof: null };
  return { event, checkpoint: cp, proof: (await proofsIn(audit, cp, [seq])).get(seq) ?? null };
}

/**
 * A run's trail as JSON Lines for offline verification (docs/audit.md): a header with
 * the public key, the checkpoints its events are under, then each event with its
 * chain fields and its inclusion proof.
 */
export async function exportRun(audit: AuditStore, runId: string, keys: AuditKeys | null): Promise<string[]> {
  const events: ChainedEvent[] = [];
  for (const stream of await audit.streamsOfRun(runId)) {
    let after: { stream: string; streamSeq: number } | null = null;
    for (;;) {
      const page = await audit.chainPage({ after, stream, limit: 5_000 });
      events.push(...page);
      if (page.length < 5_000) break;
      after = { stream, streamSeq: page.at(-1)!.streamSeq! };
    }
  }
  events.sort((a, b) => a.seq - b.seq);
  const cps = await audit.checkpoints();
  const used = new Map<number, Checkpoint>();
  for (const e of events) {
    const cp = covering(cps, e.seq);
    if (cp) used.set(cp.n, cp);
  }
  const proofs = new Map<number, InclusionProof>();
  for (const cp of used.values()) {
    for (const [seq, p] of await proofsIn(audit, cp, events.map((e) => e.seq))) proofs.set(seq, p);
  }
  const lines: Json[] = [
    { type: 'header', format: EXPORT_FORMAT, runId, keyId: keys?.keyId ?? null, publicKey: keys ? publicKeyPem(keys.publicKey) : null },
    ...[...used.values()].map((cp) => ({ type: 'checkpoint', ...cp })),
    ...events.map((e) => ({ type: 'event', ...e, data: e.data ?? null, proof: (proofs.get(e.seq) ?? null) as unknown as Json })),
  ];
  return lines.map((l) => JSON.stringify(l));
}
