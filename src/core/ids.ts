import { randomFillSync } from 'node:crypto';

// Crockford base32: ids sort by creation time as plain strings, which keeps
// listings and cursors stable without an extra column.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

let lastMs = 0;
let seq = 0;

// Random bytes are drawn 4 KiB at a time: one call per id was about 2% of the CPU of a
// no-op task (bench W2).
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/** A time-sortable id: `<prefix>_` + 10 chars of ms timestamp + 4 chars of sequence + 8 random. */
export function newId(prefix: string): string {
  const now = Date.now();
  if (now === lastMs) seq++;
  else {
    lastMs = now;
    seq = 0;
  }
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  let s = '';
  let q = seq;
  for (let i = 0; i < 4; i++) {
    s = ALPHABET[q % 32]! + s;
    q = Math.floor(q / 32);
  }
  if (poolAt + 8 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  let rand = '';
  for (let i = 0; i < 8; i++) rand += ALPHABET[pool[poolAt + i]! % 32]!;
  poolAt += 8;
  return `${prefix}_${time}${s}${rand}`;
}
