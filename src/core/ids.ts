import { randomBytes } from 'node:crypto';

// Crockford base32: ids sort by creation time as plain strings, which keeps
// listings and cursors stable without an extra column.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

let lastMs = 0;
let seq = 0;

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
  const bytes = randomBytes(8);
  let rand = '';
  for (const b of bytes) rand += ALPHABET[b % 32]!;
  return `${prefix}_${time}${s}${rand}`;
}
