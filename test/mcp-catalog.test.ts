// The MCP tool catalog in the store: a process that connects to MCP servers (the
// runtime's mcp-clients service, as in `spine up` / `spine worker`) writes what each
// server lists, on start and on reload; the commands that do not connect read it —
// `spine policy explain` explains `everything.echo` and `spine agents list` shows it —
// and before any process has connected they say so rather than "unknown tool".
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Json } from '../src/core/types.ts';
import { closeMcpClients, loadConfig } from '../src/runtime/config.ts';
import { Runtime } from '../src/runtime/runtime.ts';
import { tempStore } from './helpers.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

after(() => closeMcpClients());

function spine(cwd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.SPINE_DB;
    delete env.SPINE_CONFIG;
    const child = spawn(process.execPath, [MAIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

it('spine up/worker catalogue the MCP tools; policy explain and agents list read them without connecting', async (t) => {
  const { store, dir, url, cleanup } = await tempStore();
  t.after(cleanup);
  const file = join(dir, 'spine.config.json5');
  const config = (tools?: string[]): Json => ({
    mcp: { servers: { everything: { command: [process.execPath, join(FIXTURES, 'mcp-server.ts'), 'stdio'], ...(tools ? { tools } : {}) } } },
    agents: { caller: { kind: 'command', command: ['true'], grants: { tools: ['everything.*'] } } },
    // allowUnmatched: the test later lists only echo, and the rule must outlive the tool it names.
    policy: { rules: [{ id: 'adding-needs-ok', kind: 'approval', actions: ['tool:everything.add'], tier: 'approve', approvers: 'ops', allowUnmatched: true }] },
  });
  writeFileSync(file, JSON.stringify(config()));
  const cli = (...args: string[]) => spine(dir, [...args, '--config', file, '--db', url]);

  // No process has connected yet: the command says why it does not know the tool.
  const before = await cli('policy', 'explain', '--agent', 'caller', '--action', 'tool:everything.add');
  assert.equal(before.code, 2);
  assert.match(before.stderr, /unknown tool "everything\.add".*MCP server "everything" has not been catalogued yet/);
  const listedBefore = await cli('agents', 'list');
  assert.match(listedBefore.stdout, /mcp everything: not catalogued yet/);

  // A process that runs agents connects and catalogues what the server lists.
  const runtime = new Runtime({ config: await loadConfig(file, {}, { connect: true }), store, services: ['mcp-clients'] });
  await runtime.start();
  const catalogued = await store.mcpTools.list();
  assert.deepEqual(
    catalogued.map((r) => [r.name, r.server, r.sideEffect]),
    [
      ['everything.add', 'everything', 'external'],
      ['everything.echo', 'everything', 'read'],
      ['everything.exit', 'everything', 'external'],
      ['everything.fail', 'everything', 'external'],
      ['everything.pair', 'everything', 'external'],
      ['everything.pid', 'everything', 'external'],
    ],
  );
  assert.deepEqual(catalogued[1]!.inputSchema && (catalogued[1]!.inputSchema as { properties: unknown }).properties, { text: { type: 'string' } });

  const explained = await cli('policy', 'explain', '--agent', 'caller', '--action', 'tool:everything.add', '--args', '{"a": 1, "b": 2}', '--json');
  assert.equal(explained.code, 0, explained.stderr);
  const result = JSON.parse(explained.stdout) as { effect: string; ruleId: string };
  assert.deepEqual([result.effect, result.ruleId], ['approve', 'adding-needs-ok']);
  const echo = await cli('policy', 'explain', '--agent', 'caller', '--action', 'tool:everything.echo');
  assert.equal(echo.code, 0, echo.stderr);
  assert.match(echo.stdout, /decision: ALLOW/);

  const listed = await cli('agents', 'list');
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /caller\s+command\s+-\s+-\s+everything\.add, everything\.echo/);
  assert.match(listed.stdout, /mcp everything: tools as listed at \d{4}-/);
  const listedJson = JSON.parse((await cli('agents', 'list', '--json')).stdout) as { agents: Array<{ tools: string[] }>; mcp: Record<string, { tools: string[] }> };
  assert.ok(listedJson.agents[0]!.tools.includes('everything.echo'));
  assert.ok(listedJson.mcp.everything!.tools.includes('everything.add'));

  // A reload that imports fewer tools refreshes the catalog; the reader honours the config's `tools` too.
  writeFileSync(file, JSON.stringify(config(['echo'])));
  await runtime.reload(await loadConfig(file, {}, { connect: true }));
  assert.deepEqual((await store.mcpTools.list()).map((r) => r.name), ['everything.echo']);
  const gone = await cli('policy', 'explain', '--agent', 'caller', '--action', 'tool:everything.add');
  assert.equal(gone.code, 2);
  assert.match(gone.stderr, /unknown tool "everything\.add" \(known: everything\.echo\); the catalog of MCP server "everything" \(as of .*\) has no such tool/);
  await runtime.stop();
});
