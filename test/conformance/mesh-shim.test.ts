// The mesh shim (docs/mesh.md, "Agents outside Spine") on a real store (SQLite; PostgreSQL
// via test/fixtures/pg-suite.ts): an HTTP agent — a real loopback server — calls a
// declared path during its turn through the gateway's POST /v1/mesh/call with the turn's
// capability, and answers with what came back, within the same turn. mesh.call and
// mesh.reply are on record; an undeclared pair is refused and audited; a forged
// capability is refused; the turn's capability dies with the turn (a late call is
// refused and audited on the task), and the secret never reaches the store. An MCP
// client calls with the MCP tool call_agent; a Python command agent with its env vars.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { createHttpAgent } from '../../src/agents/http/config.ts';
import { CommandAgent } from '../../src/agents/command-agent.ts';
import type { Agent } from '../../src/core/agent.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../src/core/clock.ts';
import type { FieldIssue } from '../../src/core/errors.ts';
import type { MeshPath } from '../../src/core/mesh.ts';
import type { ActionResult, Json, TurnInput } from '../../src/core/types.ts';
import { MeshShim } from '../../src/engine/mesh-shim.ts';
import type { Registry } from '../../src/engine/options.ts';
import { Worker } from '../../src/engine/worker.ts';
import { DEFAULT_GATEWAY } from '../../src/gateway/config.ts';
import { startGateway } from '../../src/gateway/server.ts';
import { Intake } from '../../src/intake/intake.ts';
import { compileBindings } from '../../src/routing/bindings.ts';
import { compileSessions } from '../../src/routing/sessions.ts';
import type { AuditEvent } from '../../src/store/audit.ts';
import type { Store } from '../../src/store/store.ts';
import { sendJson, startAgentServer } from '../fixtures/http-agent-server.ts';
import { auditOf, FAST_WORKER, finished, registry, submit, tempStore } from '../helpers.ts';

const SECRET = 'mesh-shim-test-secret';
const data = (e: AuditEvent): Record<string, Json> => (e.data ?? {}) as Record<string, Json>;

/** POSTs a shim call; the status and the parsed body. */
async function shimCall(url: string, body: Record<string, Json>): Promise<{ status: number; body: { ok?: boolean; value?: Json; error?: { code: string; details?: { reason?: string } } } }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as never };
}

/** A store, a gateway on a loopback port and a worker sharing one shim, with `lead` an HTTP agent served by `serve`. */
async function setup(t: TestContext, serve: ((turn: TurnInput) => Promise<Json>) | Agent, mesh: MeshPath[], others: Record<string, () => { output: Json }>, onUrl?: (url: string) => void) {
  const issues: FieldIssue[] = [];
  let lead: Agent;
  if (typeof serve === 'function') {
    const srv = await startAgentServer(t, SECRET);
    srv.on('/lead', async (req, res) => sendJson(res, 200, await serve(req.turn)));
    lead = createHttpAgent({ kind: 'http', url: `${srv.url}/lead`, secret: SECRET, retries: 0 }, { name: 'lead', dir: '.', path: 'agents.lead', issues, agentNames: ['lead'] })!;
    assert.deepEqual(issues, []);
  } else lead = serve;
  const reg: Registry = { ...registry({ lead: { agent: lead, retry: { maxAttempts: 1 } }, ...others }), mesh };
  const { store, cleanup } = await tempStore();
  const shim = new MeshShim();
  const intake = new Intake(store, reg, { bindings: compileBindings([], [...reg.agents.keys()], issues), sessions: compileSessions(undefined, issues) }, systemClock);
  // Anonymous loopback: the MCP client below needs no API token (the shim's own route never does).
  const gw = await startGateway({ store, intake, settings: DEFAULT_GATEWAY, host: '127.0.0.1', port: 0, allowAnonymousLoopback: true, shim });
  onUrl?.(gw.url);
  const worker = new Worker({ store, registry: reg, options: FAST_WORKER, shim });
  await worker.start();
  t.after(async () => {
    await worker.stop();
    await gw.close();
    await cleanup();
  });
  return { store, reg, shim, url: gw.url };
}

const meshEvents = async (store: Store, runId: string) => (await auditOf(store, runId)).filter((e) => e.kind.startsWith('mesh.'));

describe('the mesh shim', () => {
  it('an HTTP agent calls a declared pair mid-turn and answers with the result; records present; other calls refused', async (t) => {
    let capability: TurnInput['mesh'] | undefined;
    const seen: Array<{ status: number; body: unknown }> = [];
    const { store, reg, shim } = await setup(
      t,
      async (turn) => {
        capability = turn.mesh;
        const m = turn.mesh!;
        const price = await shimCall(m.url, { token: m.token, agent: 'pricer', input: { sku: 'a-1' }, id: 'p' });
        const undeclared = await shimCall(m.url, { token: m.token, agent: 'other', input: null });
        const forged = await shimCall(m.url, { token: `msh_${'A'.repeat(43)}`, agent: 'pricer' });
        seen.push(price, undeclared, forged);
        return { output: { price: price.body.ok ? price.body.value! : null, grants: turn.grants.mesh ?? [] } };
      },
      [{ from: 'lead', to: 'pricer', maxPerMinute: 1_000, maxHops: 1 }],
      { pricer: () => ({ output: { price: 42 } }), other: () => ({ output: 'never' }) },
    );
    const run = await submit(store, reg, 'lead', { q: 'price?' });
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    // The answer came back within the turn: one turn, no child task.
    assert.deepEqual(done.output, { price: { price: 42 }, grants: ['pricer'] });
    assert.equal((await store.tasks.list({ runId: run.id, limit: 10 })).length, 1);
    const root = await store.tasks.get(run.rootTaskId);
    assert.equal(root!.turns, 1);

    const [price, undeclared, forged] = seen as [(typeof seen)[number], { status: number; body: ActionResult }, { status: number; body: { error: { code: string; details: { reason: string } } } }];
    assert.equal(price.status, 200);
    assert.equal(undeclared.status, 200);
    assert.equal(undeclared.body.ok, false);
    assert.equal(!undeclared.body.ok && undeclared.body.error.code, 'MESH_REFUSED');
    assert.equal(!undeclared.body.ok && (undeclared.body.error.details as { reason: string }).reason, 'undeclared');
    assert.equal(forged.status, 403);
    assert.equal(forged.body.error.code, 'MESH_REFUSED');
    assert.equal(forged.body.error.details.reason, 'capability');

    const events = await meshEvents(store, run.id);
    assert.deepEqual(
      events.map((e) => [e.kind, data(e).to, data(e).reason ?? null]),
      [
        ['mesh.call', 'pricer', null],
        ['mesh.reply', 'pricer', null],
        ['mesh.refused', 'other', 'undeclared'],
      ],
    );
    const [call, reply] = events as [AuditEvent, AuditEvent];
    assert.equal(data(call).key, `${run.id}/${run.rootTaskId}/1/shim.0`);
    assert.equal(data(reply).call, data(call).call);
    assert.equal(data(reply).ok, true);
    // mesh.reply is committed before the caller's turn (and so before its turn.committed).
    const committed = (await auditOf(store, run.id)).find((e) => e.kind === 'turn.committed');
    assert.ok(committed && reply.seq < committed.seq);

    // The capability died with the turn: a late call is refused, and audited on the task.
    assert.equal(shim.size, 0);
    const late = await shimCall(capability!.url, { token: capability!.token, agent: 'pricer' });
    assert.equal(late.status, 403);
    assert.equal(late.body.error?.details?.reason, 'capability');
    const after = await meshEvents(store, run.id);
    assert.deepEqual(after.map((e) => [e.kind, data(e).reason ?? null]).at(-1), ['mesh.refused', 'capability']);
    assert.equal(after.at(-1)!.taskId, run.rootTaskId);

    // The secret never reached the store: not in an audit event, not in the task's turns.
    const stored = JSON.stringify(await auditOf(store, run.id)) + JSON.stringify(await store.tasks.get(run.rootTaskId));
    assert.ok(!stored.includes(capability!.token));
  });

  it('an MCP client acting for the agent calls with the MCP tool call_agent, under the same records', async (t) => {
    const answers: Json[] = [];
    let origin = '';
    const { store, reg } = await setup(
      t,
      async (turn) => {
        const m = turn.mesh!;
        const client = new Client({ name: 'external-agent', version: '1.0.0' });
        await client.connect(new StreamableHTTPClientTransport(new URL(`${origin}/v1/mcp`)));
        try {
          for (const agent of ['pricer', 'other']) {
            const r = await client.callTool({ name: 'call_agent', arguments: { token: m.token, agent, input: { sku: 'b-2' } } });
            answers.push({ isError: r.isError === true, content: r.structuredContent as Json });
          }
        } finally {
          await client.close();
        }
        return { output: 'called' };
      },
      [{ from: 'lead', to: 'pricer', maxPerMinute: 1_000, maxHops: 1 }],
      { pricer: () => ({ output: { price: 7 } }), other: () => ({ output: 'never' }) },
      (url) => (origin = url),
    );
    const run = await submit(store, reg, 'lead');
    assert.equal((await finished(store, run.id)).state, 'succeeded');
    assert.deepEqual(answers[0], { isError: false, content: { index: 0, type: 'call_agent', ok: true, value: { price: 7 } } });
    assert.equal((answers[1] as { isError: boolean }).isError, true);
    assert.equal((answers[1] as { content: { error: { code: string; details: { reason: string } } } }).content.error.details.reason, 'undeclared');
    const events = await meshEvents(store, run.id);
    assert.deepEqual(events.map((e) => e.kind), ['mesh.call', 'mesh.reply', 'mesh.refused']);
  });

  it('a command agent (Python) calls with SPINE_MESH_TOKEN and SPINE_MESH_URL from its environment', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'spine-shim-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const script = join(dir, 'lead.py');
    // Reads only its environment for the capability (not the turn on stdin): the env path is what is tested.
    writeFileSync(
      script,
      [
        'import json, os, sys, urllib.request',
        'sys.stdin.read()',
        "body = json.dumps({'token': os.environ['SPINE_MESH_TOKEN'], 'agent': 'pricer', 'input': {'sku': 'py'}}).encode()",
        "req = urllib.request.Request(os.environ['SPINE_MESH_URL'], data=body, headers={'content-type': 'application/json'})",
        'answer = json.load(urllib.request.urlopen(req))',
        "print(json.dumps({'output': answer['value']}))",
      ].join('\n'),
    );
    const { store, reg } = await setup(t, new CommandAgent({ name: 'lead', command: ['python3', script], cwd: dir }), [{ from: 'lead', to: 'pricer', maxPerMinute: 1_000, maxHops: 1 }], {
      pricer: () => ({ output: { price: 3 } }),
    });
    const run = await submit(store, reg, 'lead');
    const done = await finished(store, run.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.output, { price: 3 });
    assert.deepEqual((await meshEvents(store, run.id)).map((e) => e.kind), ['mesh.call', 'mesh.reply']);
  });

  it('a turn of an agent without mesh paths carries no capability', async (t) => {
    let turnSeen: TurnInput | null = null;
    const { store, reg } = await setup(
      t,
      async (turn) => {
        turnSeen = turn;
        return { output: 'ok' };
      },
      [],
      { pricer: () => ({ output: 1 }) },
    );
    const done = await finished(store, (await submit(store, reg, 'lead')).id);
    assert.equal(done.state, 'succeeded');
    assert.equal((turnSeen as TurnInput | null)!.mesh, undefined);
  });

  it('a body without a token is a 400 naming the field, and changes nothing', async (t) => {
    const { store, url } = await setup(t, async () => ({ output: null }), [], {});
    const before = (await store.audit.list({ limit: 10_000 })).length;
    const res = await shimCall(`${url}/v1/mesh/call`, { agent: 'pricer' });
    assert.equal(res.status, 400);
    assert.match(JSON.stringify(res.body), /token/);
    assert.equal((await store.audit.list({ limit: 10_000 })).length, before);
  });
});
