import { hash } from 'node:crypto';
import type { LeafRow } from '../store/audit.ts';

/**
 * The Merkle tree of a checkpoint, as RFC 6962 (Certificate Transparency) defines it:
 * leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right), the left subtree
 * holding the largest power of two below n leaves. A leaf's data is the JCS of
 * {seq, stream, streamSeq, hash}, so a checkpoint binds each event's global seq too.
 */

const NODE = Buffer.from([1]);
const str = (v: string | null): string => (v === null ? 'null' : JSON.stringify(v));

/** The JCS of {seq, stream, streamSeq, hash}, its keys written in their sorted order. */
export function leafData(l: LeafRow): string {
  return `{"hash":${str(l.hash)},"seq":${l.seq},"stream":${str(l.stream)},"streamSeq":${l.streamSeq === null ? 'null' : l.streamSeq}}`;
}

export function leafHash(l: LeafRow): Buffer {
  // U+0000 is the one byte 0x00 in UTF-8: the RFC 6962 leaf prefix.
  return hash('sha256', `\u0000${leafData(l)}`, 'buffer');
}

function nodeHash(left: Buffer, right: Buffer): Buffer {
  return hash('sha256', Buffer.concat([NODE, left, right], 65), 'buffer');
}

/** The largest power of two strictly below n (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function mth(leaves: readonly Buffer[], lo: number, hi: number): Buffer {
  const n = hi - lo;
  if (n === 1) return leaves[lo]!;
  const k = split(n);
  return nodeHash(mth(leaves, lo, lo + k), mth(leaves, lo + k, hi));
}

/** The root (hex) over leaf hashes; the empty tree's root is SHA-256 of nothing. */
export function merkleRoot(leaves: readonly Buffer[]): string {
  if (leaves.length === 0) return hash('sha256', '', 'hex');
  return mth(leaves, 0, leaves.length).toString('hex');
}

/** The audit path of leaf m (RFC 6962 §2.1.1), bottom-up, as hex. */
export function inclusionProof(leaves: readonly Buffer[], m: number): string[] {
  const path: Buffer[] = [];
  const walk = (lo: number, hi: number, i: number): void => {
    const n = hi - lo;
    if (n <= 1) return;
    const k = split(n);
    if (i < k) {
      walk(lo, lo + k, i);
      path.push(mth(leaves, lo + k, hi));
    } else {
      walk(lo + k, hi, i - k);
      path.push(mth(leaves, lo, lo + k));
    }
  };
  walk(0, leaves.length, m);
  return path.map((b) => b.toString('hex'));
}

/** Checks an audit path (RFC 9162 §2.1.3.2): leaf `index` of `size` leaves hashes up to `root`. */
export function verifyInclusion(leaf: Buffer, index: number, size: number, proof: readonly string[], root: string): boolean {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    const h = Buffer.from(p, 'hex');
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(h, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, h);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.toString('hex') === root;
}
