// docs/mcp.md's client snippet, as written: the JSON block with "mcpServers" is read
// from the doc, its placeholder paths filled in, and the command started the way an
// MCP client does — the SDK's StdioClientTransport, in a folder of its own, with the
// SDK's minimal environment (HOME, LOGNAME, PATH, SHELL, TERM, USER). The config has
// `{env}` secrets that `spine mcp` never uses and that are unset (a Slack signing
// secret, an LLM API key, an HTTP agent's header, an MCP server's token): the server
// starts anyway, lists its tools and agents, and takes work.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const AGENTS = fileURLToPath(new URL('./fixtures/mcp-agents.ts', import.meta.url));

function snippet(): { command: string; args: string[] } {
  const doc = readFileSync(join(ROOT, 'docs/mcp.md'), 'utf8');
  const block = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('"mcpServers"'));
  assert.ok(block, 'docs/mcp.md has the client snippet');
  const parsed = JSON.parse(block) as { mcpServers: { spine: { command: string; args: string[] } } };
  return parsed.mcpServers.spine;
}

it("docs/mcp.md's client snippet starts `spine mcp` under a client's minimal environment, with unused secrets unset", async (t) => {
  const project = mkdtempSync(join(tmpdir(), 'spine-mcp-project-'));
  const elsewhere = mkdtempSync(join(tmpdir(), 'spine-mcp-client-'));
  t.after(() => {
    rmSync(project, { recursive: true, force: true });
    rmSync(elsewhere, { recursive: true, force: true });
  });
  const unset = ['SPINE_T_SLACK_SIGNING', 'SPINE_T_LLM_KEY', 'SPINE_T_HTTP_AUTH', 'SPINE_T_GH_TOKEN'];
  for (const v of unset) assert.equal(getDefaultEnvironment()[v], undefined);
  writeFileSync(
    join(project, 'spine.config.json5'),
    JSON.stringify({
      agents: {
        echo: { kind: 'function', module: AGENTS, export: 'echo', description: 'Echoes what it is sent' },
        writer: { kind: 'llm', models: [{ provider: 'openai', model: 'gpt-4o-mini', apiKey: { env: 'SPINE_T_LLM_KEY' } }] },
        remote: { kind: 'http', url: 'http://127.0.0.1:9/turn', headers: { Authorization: { env: 'SPINE_T_HTTP_AUTH' } } },
      },
      channels: { slack: { accounts: { acme: { signingSecret: { env: 'SPINE_T_SLACK_SIGNING' }, botToken: 'xoxb-inline' } } } },
      mcp: { servers: { github: { command: ['npx', '-y', '@modelcontextprotocol/server-github'], env: { GITHUB_PERSONAL_ACCESS_TOKEN: { env: 'SPINE_T_GH_TOKEN' } } } } },
    }),
  );
  const { command, args } = snippet();
  const fill = (s: string) => s.replaceAll('/path/to/spine', ROOT.replace(/\/$/, '')).replaceAll('/path/to/project', project);
  // As a client starts it: its own folder, and (no `env` given) the SDK's default environment.
  const transport = new StdioClientTransport({ command: fill(command), args: args.map(fill), cwd: elsewhere, stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const client = new Client({ name: 'snippet-test', version: '1.0.0' });
  t.after(() => client.close());
  await client.connect(transport).catch((err: unknown) => assert.fail(`spine mcp did not start: ${String(err)}\n${stderr}`));

  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((x) => x.name).sort(), ['decide_approval', 'get_fact', 'get_run', 'list_agents', 'list_approvals', 'search_memory', 'submit_work']);
  const agents = (await client.callTool({ name: 'list_agents', arguments: {} })).structuredContent as { agents: Array<{ name: string }> };
  assert.deepEqual(agents.agents.map((a) => a.name).sort(), ['echo', 'remote', 'writer']);
  const sent = (await client.callTool({ name: 'submit_work', arguments: { agent: 'echo', text: 'hello over stdio' } })).structuredContent as { run: { id: string; state: string } };
  assert.match(sent.run.id, /^run/);
  const got = (await client.callTool({ name: 'get_run', arguments: { runId: sent.run.id } })).structuredContent as { run: { id: string } };
  assert.equal(got.run.id, sent.run.id);
  // The store is the one the snippet names, not one in the client's folder.
  assert.ok(readFileSync(join(project, '.spine/spine.db')).length > 0);
});
