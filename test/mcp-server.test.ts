// Spine as an MCP server, driven by the official SDK's Client: over stdio (`spine mcp`
// as a child process on the project's store and config) and over Streamable HTTP on
// the gateway (with token scopes). Work is submitted and waited for, deduplicated by
// idempotency key, a tool call held for approval is listed and approved through MCP,
// and refusals come back as tool errors with Spine's codes.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Json } from '../src/core/types.ts';
import type { Approval } from '../src/store/store.ts';
import { FIXTURES, startProject, type Project, type TokenName } from './fixtures/http-gateway.ts';
import { until } from './helpers.ts';

/** Every field the tools' structured results carry (each result has some of them). */
interface ToolValue {
  run: { id: string; agent: string; state: string; output: Json };
  finished: boolean;
  duplicate: boolean;
  error: { code: string; message: string };
  approvals: Approval[];
  approval: Approval;
  agents: Array<{ name: string; description: string | null }>;
}

interface ToolAnswer {
  isError: boolean;
  value: ToolValue;
  text: string;
}

async function call(client: Client, name: string, args: Record<string, Json> = {}): Promise<ToolAnswer> {
  const r = (await client.callTool({ name, arguments: args })) as { isError?: boolean; structuredContent?: unknown; content: Array<{ type: string; text?: string }> };
  return { isError: r.isError === true, value: r.structuredContent as ToolValue, text: r.content.map((c) => c.text ?? '').join('\n') };
}

async function stdioClient(p: Project): Promise<{ client: Client; stderr: () => string }> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [join(FIXTURES, 'mcp-cli.ts'), '--db', p.dbUrl, '--config', p.file, '--as', 'ide'],
    cwd: p.dir,
    stderr: 'pipe',
  });
  let err = '';
  transport.stderr?.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const client = new Client({ name: 'spine-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, stderr: () => err };
}

async function httpClient(p: Project, token: TokenName | null): Promise<Client> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${p.tokens[token]}` } : {};
  const client = new Client({ name: 'spine-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${p.url}/v1/mcp`), { requestInit: { headers } }));
  return client;
}

/** The approval flow both transports share: a held tool call is listed, approved, and the run finishes. */
async function approvalRoundTrip(p: Project, client: Client, decider: string): Promise<void> {
  const submitted = await call(client, 'submit_work', { agent: 'gated', text: 'remember the milk', wait: true, waitMs: 200 });
  assert.equal(submitted.isError, false, submitted.text);
  assert.equal(submitted.value.finished, false, 'held for approval');
  const runId = submitted.value.run.id;
  await until('the approval is requested', async () => (await p.store.approvals.list({ runId, limit: 5 })).length === 1);
  const listed = await call(client, 'list_approvals', { runId });
  assert.equal(listed.value.approvals.length, 1);
  const [approval] = listed.value.approvals;
  assert.ok(approval);
  assert.equal(approval.state, 'pending');
  assert.equal(approval.ruleId, 'notes-need-ok');
  assert.deepEqual(approval.action, { kind: 'tool', name: 'notes.save', input: { note: 'remember the milk' } });

  const decided = await call(client, 'decide_approval', { approvalId: approval.id, approve: true, reason: 'fine' });
  assert.equal(decided.isError, false, decided.text);
  assert.equal(decided.value.approval.state, 'approved');
  assert.equal(decided.value.approval.decidedBy, decider);
  const again = await call(client, 'decide_approval', { approvalId: approval.id, approve: false });
  assert.equal(again.isError, true, 'an approval is decided once');

  let run: ToolValue['run'] | null = null;
  await until('the run finishes', async () => {
    run = (await call(client, 'get_run', { runId })).value.run;
    return run.state === 'succeeded';
  });
  assert.deepEqual(run!.output, { saved: { index: 0, type: 'tool', ok: true, value: 'saved: remember the milk' } });
}

describe('Spine as an MCP server', () => {
  it('over stdio (spine mcp): tools, submit and wait, idempotency, routing, approvals, errors', async (t) => {
    const p = await startProject(t);
    const { client, stderr } = await stdioClient(p);
    t.after(() => client.close());

    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((x) => x.name).sort(), ['decide_approval', 'get_fact', 'get_run', 'list_agents', 'list_approvals', 'search_memory', 'submit_work']);
    const submitTool = tools.find((x) => x.name === 'submit_work')!;
    assert.deepEqual(Object.keys(submitTool.inputSchema.properties ?? {}).sort(), ['agent', 'data', 'idempotencyKey', 'text', 'wait', 'waitMs']);
    assert.equal(tools.find((x) => x.name === 'get_run')!.annotations?.readOnlyHint, true);

    const agents = await call(client, 'list_agents');
    assert.deepEqual(
      agents.value.agents.map((a) => [a.name, a.description]),
      [
        ['echo', 'Echoes what it is sent'],
        ['gated', 'Saves a note, with approval'],
      ],
    );

    const done = await call(client, 'submit_work', { agent: 'echo', text: 'hello', data: { n: 1 }, wait: true, waitMs: 10_000, idempotencyKey: 'k1' });
    assert.equal(done.isError, false, done.text);
    assert.equal(done.value.finished, true);
    assert.equal(done.value.run.state, 'succeeded');
    assert.deepEqual(done.value.run.output, { echo: 'hello', data: { n: 1 }, channel: 'mcp' });
    assert.match(done.text, /"state": "succeeded"/, 'the text content carries the same JSON');

    const dup = await call(client, 'submit_work', { agent: 'echo', text: 'hello', data: { n: 1 }, idempotencyKey: 'k1' });
    assert.equal(dup.value.duplicate, true);
    assert.equal(dup.value.run.id, done.value.run.id);
    const reused = await call(client, 'submit_work', { agent: 'echo', text: 'something else', idempotencyKey: 'k1' });
    assert.equal(reused.isError, true);
    assert.equal(reused.value.error.code, 'IDEMPOTENCY_KEY_REUSED');

    // Without an agent the bindings decide (channel mcp → echo).
    const routed = await call(client, 'submit_work', { text: 'route me', wait: true, waitMs: 10_000 });
    assert.equal(routed.value.run.agent, 'echo');
    assert.equal(routed.value.run.state, 'succeeded');

    const unknown = await call(client, 'submit_work', { agent: 'nobody', text: 'x' });
    assert.equal(unknown.isError, true);
    assert.equal(unknown.value.error.code, 'UNKNOWN_AGENT');
    assert.match(unknown.text, /^UNKNOWN_AGENT: unknown agent "nobody"/);
    const missing = await call(client, 'get_run', { runId: 'run_nope' });
    assert.equal(missing.value.error.code, 'NOT_FOUND');
    // Shared memory: every scope for a read token, or the grants of a named agent (echo holds none).
    await p.store.memory.write(
      { tenant: 'default', scope: 'team/research', key: 'milk', value: { fresh: true }, text: 'the milk is fresh', trust: 'owner', writtenBy: { agent: null, run: null, task: null, turn: null, actor: 'test' }, onConflict: 'reject' },
      Date.now(),
    );
    const found = await call(client, 'search_memory', { query: 'fresh milk' });
    assert.equal(found.isError, false, found.text);
    assert.deepEqual((found.value as unknown as { facts: Array<{ key: string; version: number }> }).facts.map((f) => [f.key, f.version]), [['milk', 1]]);
    const asEcho = await call(client, 'search_memory', { query: 'fresh milk', asAgent: 'echo' });
    assert.deepEqual((asEcho.value as unknown as { facts: unknown[] }).facts, [], "echo's grants read nothing");
    const fact = await call(client, 'get_fact', { scope: 'team/research', key: 'milk' });
    assert.deepEqual((fact.value as unknown as { fact: { value: Json } }).fact.value, { fresh: true });
    assert.equal((await call(client, 'get_fact', { scope: 'team/research', key: 'milk', asAgent: 'echo' })).value.error.code, 'NOT_FOUND');
    const badArgs = await client.callTool({ name: 'submit_work', arguments: { agent: 5 } });
    assert.equal(badArgs.isError, true, 'arguments are checked against the tool schema');

    await approvalRoundTrip(p, client, 'ide');

    // The envelope is audited like any other intake, naming the MCP caller.
    const received = (await p.store.audit.list({ limit: 1000 })).filter((e) => e.kind === 'envelope.received');
    assert.ok(received.length >= 3);
    assert.ok(received.every((e) => e.actor === 'mcp:ide'), JSON.stringify(received.map((e) => e.actor)));
    assert.match(stderr(), /serving MCP on stdio/);
  });

  it('over Streamable HTTP on the gateway: bearer tokens, and each tool checks the scopes', async (t) => {
    const p = await startProject(t);
    await assert.rejects(httpClient(p, null), /401|UNAUTHENTICATED|Unauthorized/i);

    const viewer = await httpClient(p, 'viewer');
    t.after(() => viewer.close());
    assert.equal((await viewer.listTools()).tools.length, 7);
    const refused = await call(viewer, 'submit_work', { agent: 'echo', text: 'hi' });
    assert.equal(refused.isError, true);
    assert.equal(refused.value.error.code, 'FORBIDDEN');
    assert.match(refused.text, /token "viewer" .* may not address an agent directly/);
    assert.equal((await call(viewer, 'list_approvals')).isError, false);
    assert.equal((await p.store.runs.list({ limit: 10 })).length, 0, 'nothing was submitted');

    const operator = await httpClient(p, 'operator');
    t.after(() => operator.close());
    const routed = await call(operator, 'submit_work', { text: 'via the binding', wait: true, waitMs: 10_000 });
    assert.equal(routed.isError, false, routed.text);
    assert.deepEqual(routed.value.run.output, { echo: 'via the binding', data: null, channel: 'mcp' });
    await approvalRoundTrip(p, operator, 'operator');

    // The raw endpoint: stateless POST only.
    const get = await fetch(`${p.url}/v1/mcp`, { headers: { authorization: `Bearer ${p.tokens.viewer}`, accept: 'text/event-stream' } });
    assert.equal(get.status, 405);
    const bad = await fetch(`${p.url}/v1/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${p.tokens.viewer}`, accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
      body: '{"jsonrpc": ',
    });
    assert.equal(bad.status, 400);
  });

  it('an ingress:mcp token reaches /v1/mcp: it may submit work on channel mcp, not read', async (t) => {
    const p = await startProject(t);
    const client = await httpClient(p, 'ingressMcp');
    t.after(() => client.close());
    const submitted = await call(client, 'submit_work', { text: 'from an ingress token', idempotencyKey: 'ingress-mcp-1' });
    assert.equal(submitted.isError, false, submitted.text);
    const read = await call(client, 'list_approvals');
    assert.equal(read.isError, true);
    assert.match(read.text, /FORBIDDEN/);
  });
});
