// MCP servers' tools in the catalog: a fixture server built with the SDK's McpServer
// runs as a stdio child process and over Streamable HTTP on loopback; its tools join
// the catalog as `<namespace>.<tool>` and a real Worker calls them for an agent that
// is granted some of them. Results map to JSON, isError becomes the action's failure,
// ungranted tools are refused by the boundary, and bad MCP config names its field.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { closeMcpClients, loadMcpTools } from '../src/tools/mcp/config.ts';
import { catalogName } from '../src/tools/mcp/clients.ts';
import { parseConfig } from '../src/config/load.ts';
import { compileConfig } from '../src/runtime/config.ts';
import { ConfigError, type FieldIssue } from '../src/core/errors.ts';
import type { ActionResult, Json } from '../src/core/types.ts';
import type { Worker } from '../src/engine/worker.ts';
import { finished, startWorker, submit, tempStore } from './helpers.ts';
import { startHttpMcpServer } from './fixtures/mcp-server.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const STDIO = [process.execPath, join(FIXTURES, 'mcp-server.ts'), 'stdio'];

after(() => closeMcpClients());

async function compileIn(dir: string, raw: Json, connect = true) {
  const file = join(dir, 'spine.config.json5');
  writeFileSync(file, JSON.stringify(raw));
  return compileConfig(file, parseConfig(file, raw), {}, { connect });
}

async function configIssues(dir: string, raw: Json): Promise<FieldIssue[]> {
  try {
    await compileIn(dir, raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues;
  }
  assert.fail('expected a ConfigError');
}

describe('MCP tools in the catalog', () => {
  it('stdio and Streamable HTTP servers: tools called through a worker, with grants, errors and JSON results', async (t) => {
    const http = await startHttpMcpServer('http', { requireToken: 'mcp-token' });
    t.after(() => http.close());
    const { store, dir, cleanup } = await tempStore();
    let worker: Worker | null = null;
    t.after(async () => {
      await worker?.stop();
      await cleanup();
    });
    process.env.SPINE_TEST_MCP_TOKEN = 'Bearer mcp-token';
    t.after(() => delete process.env.SPINE_TEST_MCP_TOKEN);
    const config = await compileIn(dir, {
      mcp: {
        servers: {
          local: { command: STDIO },
          remote: { url: http.url, headers: { Authorization: { env: 'SPINE_TEST_MCP_TOKEN' } } },
        },
      },
      agents: {
        caller: { kind: 'function', module: join(FIXTURES, 'mcp-agents.ts'), export: 'caller', grants: { tools: ['local.*', 'remote.add'] } },
      },
    });
    const tools = config.registry.tools;
    assert.deepEqual([...tools.keys()].sort(), [
      'local.add',
      'local.echo',
      'local.exit',
      'local.fail',
      'local.pair',
      'local.pid',
      'remote.add',
      'remote.echo',
      'remote.exit',
      'remote.fail',
      'remote.pair',
      'remote.pid',
    ]);
    assert.equal(tools.get('local.echo')!.description, 'Echoes the text back');
    assert.equal(tools.get('local.add')!.description, 'Add: Adds two numbers');
    assert.equal(tools.get('local.echo')!.sideEffect, 'read', 'readOnlyHint maps to a read tool');
    assert.equal(tools.get('local.fail')!.sideEffect, 'external');
    const schema = tools.get('remote.add')!.inputSchema as { type: string; properties: Record<string, unknown>; required: string[] };
    assert.equal(schema.type, 'object');
    assert.deepEqual(Object.keys(schema.properties).sort(), ['a', 'b']);

    worker = await startWorker(store, config.registry);
    const run = await submit(store, config.registry, 'caller', null);
    const done = await finished(store, run.id, 15_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    const out = done.output as { results: ActionResult[]; grants: string[] };
    assert.deepEqual(out.grants.sort(), ['local.add', 'local.echo', 'local.exit', 'local.fail', 'local.pair', 'local.pid', 'remote.add']);
    const byId: Record<string, ActionResult> = Object.fromEntries(out.results.map((r) => [r.id ?? '', r]));

    assert.deepEqual(byId.echo, { index: 0, type: 'tool', id: 'echo', ok: true, value: 'stdio: hi' });
    const add = byId.add!;
    assert.ok(add.ok);
    assert.deepEqual(add.value, { sum: 5, key: `${run.id}/${run.rootTaskId}/1/1` }, 'structuredContent, with the idempotency key passed in _meta');
    assert.equal(byId.fail!.ok, false);
    if (!byId.fail!.ok) {
      assert.equal(byId.fail!.error.code, 'TOOL_FAILED');
      assert.match(byId.fail!.error.message, /tool "local\.fail": it broke: on purpose/);
    }
    assert.equal(byId.denied!.ok, false);
    if (!byId.denied!.ok) {
      assert.equal(byId.denied!.error.code, 'POLICY_DENIED');
      assert.equal((byId.denied!.error.details as { ruleId: string }).ruleId, 'grants');
    }
    assert.deepEqual(byId.pair, {
      index: 4,
      type: 'tool',
      id: 'pair',
      ok: true,
      value: { content: [{ type: 'text', text: 'one' }, { type: 'image', data: Buffer.from('png').toString('base64'), mimeType: 'image/png' }] },
    });
    assert.equal(byId.badArgs!.ok, false, 'the server validates arguments against its schema');
    if (!byId.badArgs!.ok) assert.match(byId.badArgs!.error.message, /local\.add/);

    assert.equal(http.calls.get('add'), 1);
    assert.equal(http.calls.get('echo') ?? 0, 0, 'the ungranted tool never reached the server');
    const effects = await store.tasks.effects({ taskId: run.rootTaskId });
    assert.deepEqual(effects.map((e) => `${e.tool}:${e.state}`).sort(), ['local.add:failed', 'local.echo:completed', 'local.fail:failed', 'local.pair:completed', 'remote.add:completed']);

    // A second compile (a config reload) reuses the live connections.
    const sessions = http.sessions.size;
    await compileIn(dir, { mcp: { servers: { remote: { url: http.url, headers: { Authorization: { env: 'SPINE_TEST_MCP_TOKEN' } } } } }, agents: { a: { kind: 'function', module: join(FIXTURES, 'mcp-agents.ts'), export: 'caller' } } });
    assert.equal(http.sessions.size, sessions);
  });

  it('a Streamable HTTP server that restarts: its 404 for the stale session starts a new one, and the call is made again once', async (t) => {
    const http = await startHttpMcpServer('restarting');
    t.after(() => http.close());
    const issues: FieldIssue[] = [];
    const tools = await loadMcpTools({ servers: { remote: { url: http.url } } }, { dir: FIXTURES, issues });
    assert.deepEqual(issues, []);
    const ctx = (n: number) => ({ idempotencyKey: `r/t/1/${n}`, maybeRepeated: false, runId: 'r', taskId: 't', agent: 'a', signal: new AbortController().signal });
    assert.match(String(await tools['remote.echo']!.run({ text: 'before' }, ctx(0))), /restarting: before/);
    assert.equal(http.sessions.size, 1);
    await http.restart();
    // The first call after the restart meets the 404, re-initializes and succeeds: no error reaches the agent.
    assert.match(String(await tools['remote.echo']!.run({ text: 'after' }, ctx(1))), /restarting: after/);
    assert.equal(http.sessions.size, 2, 'a new session was initialized');
    assert.equal(http.calls.get('echo'), 2, 'each call reached the server exactly once');
    // Sessions expired on a server that stays up: the stale id gets a 404, and a new session is made.
    await http.expireSessions();
    assert.match(String(await tools['remote.echo']!.run({ text: 'expired' }, ctx(2))), /restarting: expired/);
    assert.equal(http.sessions.size, 3);
    assert.equal(http.calls.get('echo'), 3);
    await closeMcpClients();
  });

  it('a stdio server that dies is started again on the next call', async () => {
    const issues: FieldIssue[] = [];
    const tools = await loadMcpTools({ servers: { crashy: { command: STDIO } } }, { dir: FIXTURES, issues });
    assert.deepEqual(issues, []);
    const ctx = (n: number) => ({ idempotencyKey: `r/t/1/${n}`, maybeRepeated: false, runId: 'r', taskId: 't', agent: 'a', signal: new AbortController().signal });
    const first = (await tools['crashy.pid']!.run(null, ctx(0))) as string;
    assert.match(String(await tools['crashy.exit']!.run({}, ctx(1))), new RegExp(`bye from ${first}`));
    // The process is gone: calls fail until the transport notices, then a new one is started.
    const deadline = Date.now() + 30_000;
    let second: string | null = null;
    while ((second === null || second === first) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      try {
        second = (await tools['crashy.pid']!.run(null, ctx(2))) as string;
      } catch (err) {
        assert.match(String(err), /MCP call to .* failed/);
      }
    }
    assert.ok(second !== null && second !== first, `a new server process (${first} → ${second})`);
    await assert.rejects(Promise.resolve(tools['crashy.echo']!.run([1] as Json, ctx(3))), /MCP tools take an object of arguments/);
  });

  it('without connect (commands that run no agents), no server is contacted', async (t) => {
    const { dir, cleanup } = await tempStore();
    t.after(cleanup);
    const config = await compileIn(dir, { mcp: { servers: { nowhere: { url: 'http://127.0.0.1:9/mcp' } } }, agents: { a: { kind: 'command', command: ['true'] } } }, false);
    assert.equal(config.registry.tools.size, 0);
  });

  it('bad MCP config: each problem names its field, and nothing starts', async (t) => {
    const { dir, cleanup } = await tempStore();
    t.after(cleanup);
    const agents = { a: { kind: 'command', command: ['true'] } };
    const schemaIssues = (() => {
      try {
        parseConfig('x.json5', { mcp: { servers: { both: { command: ['x'], url: 'http://127.0.0.1:1/mcp' }, neither: {}, 'bad name': { command: ['x'] }, h: { url: 'http://127.0.0.1:1/mcp', env: { A: 'b' } } } }, agents });
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.issues;
      }
      assert.fail('expected a ConfigError');
    })();
    assert.deepEqual(schemaIssues.map((i) => i.path).sort(), ['mcp.servers.bad name', 'mcp.servers.both', 'mcp.servers.h.env', 'mcp.servers.neither']);
    assert.match(schemaIssues.find((i) => i.path === 'mcp.servers.both')!.message, /either `command` \(stdio\) or `url`/);

    const issues = await configIssues(dir, {
      mcp: {
        servers: {
          missing: { command: [join(dir, 'no-such-server')], connectTimeoutMs: 2000 },
          closed: { url: 'http://127.0.0.1:9/mcp', connectTimeoutMs: 2000 },
          secretless: { url: 'http://127.0.0.1:9/mcp', headers: { Authorization: { env: 'SPINE_TEST_UNSET_MCP' } } },
          picky: { command: STDIO, tools: ['echo', 'nope'] },
        },
      },
      agents,
    });
    const paths = issues.map((i) => i.path).sort();
    // An unset secret is not a config error: that server alone is left out (next test).
    assert.deepEqual(paths, ['mcp.servers.closed', 'mcp.servers.missing', 'mcp.servers.picky.tools']);
    assert.match(issues.find((i) => i.path === 'mcp.servers.missing')!.message, /cannot reach the MCP server: .*no-such-server/);
    assert.match(issues.find((i) => i.path === 'mcp.servers.picky.tools')!.message, /no tool "nope" \(it lists: echo, add, fail, pair, exit, pid\)/);
  });

  it('a server whose {env} secret is unset is left out with a warning naming the field; the other servers connect', async (t) => {
    const { dir, cleanup } = await tempStore();
    t.after(cleanup);
    const config = await compileIn(dir, {
      mcp: {
        servers: {
          secretless: { url: 'http://127.0.0.1:9/mcp', headers: { Authorization: { env: 'SPINE_TEST_UNSET_MCP' } } },
          fine: { command: STDIO, tools: ['echo'] },
        },
      },
      agents: { a: { kind: 'command', command: ['true'] } },
    });
    assert.deepEqual([...config.registry.tools.keys()], ['fine.echo']);
    assert.deepEqual(config.warnings, [
      { path: 'mcp.servers.secretless.headers.Authorization.env', message: 'environment variable SPINE_TEST_UNSET_MCP is not set: MCP server "secretless" is not connected, its tools are unavailable' },
    ]);
    assert.deepEqual(config.mcpTools, { fine: ['fine.echo'] }, 'the catalog keeps what the left-out server last listed');
  });

  it('catalog names: characters the catalog does not allow become _', () => {
    assert.equal(catalogName('gh', 'create_issue'), 'gh.create_issue');
    assert.equal(catalogName('gh', 'issues/create'), 'gh.issues_create');
    assert.equal(catalogName('gh', 'a.b'), 'gh.a.b');
    assert.equal(catalogName('gh', 'a..b'), null);
  });
});
