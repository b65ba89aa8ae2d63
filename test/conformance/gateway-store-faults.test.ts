// A full or read-only store seen from the front door: writes answer 503
// STORE_UNAVAILABLE (retryable, with Retry-After), /readyz is not ready, nothing is
// stored — and all of it recovers by itself once the fault clears.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { envelopeBody, startTestGateway, stored } from '../fixtures/gateway-setup.ts';
import { injectFault, type StoreFault } from '../fixtures/store-faults.ts';

describe('store faults at the gateway', () => {
  for (const fault of ['disk-full', 'read-only'] as const satisfies readonly StoreFault[]) {
    it(`${fault}: 503 STORE_UNAVAILABLE and not ready while it lasts; accepted again once it clears`, async (t) => {
      const g = await startTestGateway(t);
      assert.equal((await g.call('GET', '/readyz', { token: null })).status, 200);
      const before = await stored(g.store);

      const clear = await injectFault(g.store, fault);
      // Large enough to need new pages: a full disk still takes a write that fits in the file's free space, as a real one does.
      const body = envelopeBody({ text: 'x'.repeat(300_000) });
      const refused = await g.call('POST', '/v1/envelopes', { token: 'admin', body, headers: { 'idempotency-key': `fault-${fault}` } });
      assert.equal(refused.status, 503);
      assert.equal(refused.body.error?.code, 'STORE_UNAVAILABLE');
      assert.ok(refused.headers.get('retry-after'), 'a retryable 503 says when to come back');
      const notReady = await g.call('GET', '/readyz', { token: null });
      assert.equal(notReady.status, 503);
      assert.equal((notReady.body as unknown as { error: { code: string } }).error.code, 'STORE_UNAVAILABLE');
      assert.deepEqual(await stored(g.store), before, 'nothing was stored');

      await clear();
      assert.equal((await g.call('GET', '/readyz', { token: null })).status, 200, 'ready again once the fault clears');
      const accepted = await g.call('POST', '/v1/envelopes', { token: 'admin', body, headers: { 'idempotency-key': `fault-${fault}` } });
      assert.equal(accepted.status, 202, 'the client’s retry with the same key is accepted');
      assert.equal((await stored(g.store)).envelopes, before.envelopes + 1);
    });
  }
});
