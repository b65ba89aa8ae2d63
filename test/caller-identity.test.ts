// Caller-asserted identity: an ingress:* token (submit only) cannot grant its sender
// roles, so a group+roles binding reserved for admins is out of its reach; operator and
// admin tokens may assert roles (they may address any agent directly anyway).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startTestGateway } from './fixtures/gateway-setup.ts';

describe('caller-asserted roles', () => {
  it('ingress:api roles are ignored; an operator token may assert them', async (t) => {
    const g = await startTestGateway(t, {
      agents: { admin: () => ({ output: 'admin' }) },
      bindings: [
        { id: 'admins', match: { channel: 'api', group: 'ops', roles: ['admin'] }, agent: 'admin' },
        { id: 'api', match: { channel: 'api' }, agent: 'echo' },
      ],
    });
    const body = { text: 'rotate the keys', peer: { kind: 'group', id: 'ops' }, sender: { id: 'mallory', roles: ['admin'] } };
    const ingress = await g.call('POST', '/v1/envelopes', { token: 'ingressApi', body, headers: { 'idempotency-key': 'roles-ingress' } });
    assert.equal(ingress.status, 202, ingress.text);
    assert.equal(ingress.body.run.agent, 'echo', 'the admin binding is not reached by a submit-only token');
    assert.equal(ingress.body.envelope.sender?.roles, undefined, 'the asserted roles were not stored');
    const again = await g.call('POST', '/v1/envelopes', { token: 'ingressApi', body, headers: { 'idempotency-key': 'roles-ingress' } });
    assert.equal(again.status, 200, 'the retry is the same envelope');

    const operator = await g.call('POST', '/v1/envelopes', { token: 'operator', body, headers: { 'idempotency-key': 'roles-operator' } });
    assert.equal(operator.status, 202, operator.text);
    assert.equal(operator.body.run.agent, 'admin');
  });
});
