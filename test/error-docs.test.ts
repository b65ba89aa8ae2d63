// The error catalogue is the one table of codes: docs/errors.md is generated from it,
// and every status docs/gateway.md gives a code is the catalogue's. Regenerate the
// table with `SPINE_WRITE_DOCS=1 node --test test/error-docs.test.ts`.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { it } from 'node:test';
import { ERROR_CATALOGUE, ERROR_CODES, isErrorCode } from '../src/core/errors.ts';

const ERRORS_MD = new URL('../docs/errors.md', import.meta.url);
const GATEWAY_MD = new URL('../docs/gateway.md', import.meta.url);
const BEGIN = '<!-- generated from ERROR_CATALOGUE (src/core/errors.ts) by test/error-docs.test.ts -->';
const END = '<!-- end of generated table -->';

function table(): string {
  const rows = ERROR_CODES.map((code) => {
    const e = ERROR_CATALOGUE[code];
    return `| \`${code}\` | ${e.status} | ${e.exit} | ${e.retryable ? 'yes' : 'no'} | ${e.summary.replace(/\|/g, '\\|')} |`;
  });
  return [BEGIN, '| code | HTTP | exit | retryable | meaning |', '|---|---|---|---|---|', ...rows, END].join('\n');
}

it('docs/errors.md holds the catalogue as it is', () => {
  const doc = readFileSync(ERRORS_MD, 'utf8');
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  assert.ok(start >= 0 && end > start, 'docs/errors.md has the generated table markers');
  const current = doc.slice(start, end + END.length);
  if (process.env.SPINE_WRITE_DOCS === '1') writeFileSync(ERRORS_MD, doc.replace(current, table()));
  else assert.equal(current, table(), 'docs/errors.md is out of date: SPINE_WRITE_DOCS=1 node --test test/error-docs.test.ts');
});

it("docs/gateway.md gives each code the catalogue's HTTP status", () => {
  const doc = readFileSync(GATEWAY_MD, 'utf8');
  let rows = 0;
  for (const line of doc.split('\n')) {
    const m = /^\| (\d{3}) \| (.+?) \|/.exec(line);
    if (!m) continue;
    for (const [, code] of m[2]!.matchAll(/`([A-Z_]+)`/g)) {
      assert.ok(isErrorCode(code!), `docs/gateway.md: ${code} is in the catalogue`);
      assert.equal(ERROR_CATALOGUE[code].status, Number(m[1]), `docs/gateway.md: ${code}`);
      rows++;
    }
  }
  assert.ok(rows >= 20, `found ${rows} codes in docs/gateway.md`);
});
