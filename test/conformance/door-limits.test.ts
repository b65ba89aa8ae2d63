// Input limits at the front door, the same on both backends: NUL in a body or a URL,
// JSON nested too deep (once, and on the idempotent retry), too many values, a
// text/plain body — each a 4xx naming the limit, and nothing stored.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { envelopeBody, startTestGateway, stored } from '../fixtures/gateway-setup.ts';

const nested = (depth: number) => `{"text":"deep","data":${'['.repeat(depth)}${']'.repeat(depth)}}`;

describe('input limits at the door', () => {
  it('NUL, depth, size and media type are refused with 4xx on both backends, and nothing is stored', { timeout: 120_000 }, async (t) => {
    const g = await startTestGateway(t);
    const before = await stored(g.store);

    const nul = await g.call('POST', '/v1/envelopes', { body: envelopeBody({ text: 'a\u0000b', data: { k: 'v' } }) });
    assert.equal(nul.status, 400, nul.text);
    assert.equal(nul.body.error.code, 'INPUT_LIMIT');
    assert.match(nul.body.error.message, /at text contains a NUL/);
    const nulKey = await g.call('POST', '/v1/envelopes', { body: envelopeBody({ data: { 'a\u0000': 1 } }) });
    assert.equal(nulKey.status, 400, nulKey.text);

    for (const path of ['/v1/runs/run%00x', '/v1/runs?agent=a%00', '/v1/envelopes/e%00', '/v1/tasks?run=%00']) {
      const r = await g.call('GET', path);
      assert.equal(r.status, 400, `${path}: ${r.text}`);
      assert.equal(r.body.error.code, 'INPUT_LIMIT');
    }

    // Deep documents: refused at once, and again on the retry with the same key (no poison run).
    for (const depth of [65, 2_000, 5_000, 100_000]) {
      for (let attempt = 0; attempt < 2; attempt++) {
        const r = await g.call('POST', '/v1/envelopes', { body: nested(depth), headers: { 'idempotency-key': `deep-${depth}` } });
        assert.equal(r.status, 400, `depth ${depth}, attempt ${attempt}: ${r.text.slice(0, 300)}`);
        assert.ok(['INPUT_LIMIT', 'INVALID_JSON'].includes(r.body.error.code), r.text.slice(0, 300));
      }
    }
    // 64 levels is allowed.
    const ok = await g.call('POST', '/v1/envelopes', { body: nested(63), headers: { 'idempotency-key': 'deep-ok' } });
    assert.equal(ok.status, 202, ok.text.slice(0, 300));

    const many = await g.call('POST', '/v1/envelopes', { body: { text: 'many', data: Array.from({ length: 1_000 }, () => 0) }, headers: { 'idempotency-key': 'many-ok' } });
    assert.ok(many.status === 202 || many.status === 413, many.text.slice(0, 200));

    const plain = await g.call('POST', '/v1/envelopes', { body: JSON.stringify(envelopeBody()), headers: { 'content-type': 'text/plain' } });
    assert.equal(plain.status, 415);
    assert.equal(plain.body.error.code, 'UNSUPPORTED_MEDIA_TYPE');

    const after = await stored(g.store);
    assert.equal(after.envelopes, before.envelopes + (many.status === 202 ? 2 : 1), 'only the two valid envelopes were stored');
  });
});
