// Health probes of MCP tool servers (docs/health.md), on the store the suite runs on:
// the fixture MCP server as a real stdio child passes its `handshake` probe, then is
// SIGKILLed and cannot start again, so the probe fails and opens the breaker of each of
// its tools; the failure shows in `spine doctor` and GET /v1/health; once it can start,
// the probe reconnects (initialize) and closes them. Over Streamable HTTP, an expired
// session is re-initialized and a server gone fails. Bad `health` config is refused at
// load, naming the field. Time is a ManualClock; nothing sleeps.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { doctorCommand } from '../../src/cli/commands/doctor.ts';
import { parseConfig } from '../../src/config/load.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { ConfigError } from '../../src/core/errors.ts';
import { newId } from '../../src/core/ids.ts';
import type { Json } from '../../src/core/types.ts';
import { Worker } from '../../src/engine/worker.ts';
import { createGateway } from '../../src/gateway/app.ts';
import { hashToken, newTokenSecret } from '../../src/gateway/auth.ts';
import { DEFAULT_GATEWAY } from '../../src/gateway/config.ts';
import { Intake } from '../../src/intake/intake.ts';
import { closeMcpClients, compileConfig } from '../../src/runtime/config.ts';
import { startHttpMcpServer } from '../fixtures/mcp-server.ts';
import { tempStore } from '../helpers.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const STDIO = [process.execPath, join(FIXTURES, 'mcp-server.ts'), 'stdio'];
const AGENTS = { a: { kind: 'function', module: join(FIXTURES, 'mcp-agents.ts'), export: 'echo' } };

after(() => closeMcpClients());

function compileIn(dir: string, raw: Json, connect = true) {
  const file = join(dir, 'spine.config.json5');
  writeFileSync(file, JSON.stringify(raw));
  return compileConfig(file, parseConfig(file, raw), {}, { connect });
}

describe('MCP servers: health probes', () => {
  it("a stdio server: passes, fails while it cannot start (its tools' breakers open, doctor and /v1/health show it), passes again (they close)", async (t) => {
    const { store, dir, url, cleanup } = await tempStore();
    t.after(cleanup);
    const flag = join(dir, 'down');
    const config = await compileIn(dir, {
      mcp: { servers: { local: { command: STDIO, env: { MCP_FIXTURE_DOWN: flag }, tools: ['echo', 'pid'], health: { probe: 'handshake', every: '30s', timeoutMs: 20_000 } } } },
      validation: { breakers: { failures: 2, cooldownMs: 60_000 } },
      agents: AGENTS,
    });
    assert.deepEqual(
      config.registry.serverProbes?.map((p) => [p.key, p.feeds, p.probe.everyMs]),
      [['mcp:local', ['tool:local.echo', 'tool:local.pid'], 30_000]],
    );
    const clock = new ManualClock(Date.now());
    // The worker's own prober, ticked by hand: the wiring a started worker runs on its clock.
    const worker = new Worker({ store, registry: config.registry, clock });
    const tick = async () => (await worker.prober.tick()).ran.map((o) => [o.key, o.ok, o.detail] as const);

    assert.deepEqual(await tick(), [['mcp:local', true, 'ping']], 'a ping on the connection the tools use');

    const ctx = { idempotencyKey: 'k', maybeRepeated: false, runId: 'r', taskId: 't', agent: 'a', signal: new AbortController().signal };
    const pid = Number(await config.registry.tools.get('local.pid')!.run(null, ctx));
    assert.ok(pid > 0 && pid !== process.pid);
    writeFileSync(flag, '');
    process.kill(pid, 'SIGKILL');

    clock.advance(30_000);
    const [first] = await tick();
    assert.equal(first?.[1], false, 'the server is gone');
    clock.advance(30_000);
    const [second] = await tick();
    assert.equal(second?.[1], false);
    assert.match(second?.[2] ?? '', /^cannot start or reach it: .*mcp-server\.ts stdio: .*Connection closed$/, 'reconnecting met a server that exits at start');
    assert.doesNotMatch(second?.[2] ?? '', /stderr|is down/, "the server's stderr is not stored");
    for (const key of ['tool:local.echo', 'tool:local.pid']) {
      const b = await store.breakers.get(key);
      assert.equal(b?.state, 'open', `${key}: two failed probes opened it`);
      assert.match(b?.lastError ?? '', /^probe: /);
    }
    assert.equal(await store.breakers.get('mcp:local'), null, 'no breaker of its own: the tools are what calls consult');

    const doctor = JSON.parse((await doctorCommand(['--db', url, '--json'])).stdout ?? '') as { checks: Array<{ name: string; status: string; detail: string }>; probes: Array<{ key: string; ok: boolean }> };
    const check = doctor.checks.find((c) => c.name === 'probes');
    assert.equal(check?.status, 'warn');
    assert.match(check?.detail ?? '', /^mcp:local FAILING .*cannot start or reach it: .*Connection closed$/);
    assert.deepEqual(doctor.probes.map((p) => [p.key, p.ok]), [['mcp:local', false]]);

    const secret = newTokenSecret();
    await store.tokens.create({ id: newId('tok'), name: 'viewer', hash: hashToken(secret), scopes: ['viewer'] }, Date.now());
    const gateway = createGateway({ store, intake: new Intake(store, config.registry, config.routing, clock), settings: { ...DEFAULT_GATEWAY, port: 0 }, clock });
    const res = await gateway.app.request('/v1/health', { headers: { authorization: `Bearer ${secret}` } });
    assert.equal(res.status, 200);
    const health = (await res.json()) as { probes: Array<{ key: string; ok: boolean; detail: string }>; breakers: Array<{ key: string; state: string }> };
    assert.deepEqual(health.probes.map((p) => [p.key, p.ok]), [['mcp:local', false]]);
    assert.deepEqual(health.breakers.map((b) => [b.key, b.state]).sort(), [['tool:local.echo', 'open'], ['tool:local.pid', 'open']]);

    rmSync(flag);
    clock.advance(60_000); // the cooldown has passed
    assert.deepEqual(await tick(), [['mcp:local', true, 'initialize, ping']], 'the probe started the server again');
    for (const key of ['tool:local.echo', 'tool:local.pid']) assert.equal((await store.breakers.get(key))?.state, 'closed', key);
    assert.equal(await config.registry.tools.get('local.echo')!.run({ text: 'back' }, ctx), 'stdio: back', 'the tools use the connection the probe made');
  });

  it('a Streamable HTTP server: a ping on the session, a new session (initialize) once it expired, a failure once the server is gone', async (t) => {
    const { store, dir, cleanup } = await tempStore();
    t.after(cleanup);
    const http = await startHttpMcpServer('probe');
    t.after(() => http.close());
    const config = await compileIn(dir, { mcp: { servers: { remote: { url: http.url, tools: ['echo'], health: { probe: 'handshake', every: '1m', timeoutMs: 20_000 } } } }, agents: AGENTS });
    const clock = new ManualClock(Date.now());
    const worker = new Worker({ store, registry: config.registry, clock });
    const tick = async () => (await worker.prober.tick()).ran.map((o) => [o.key, o.ok, o.detail] as const);

    assert.deepEqual(await tick(), [['mcp:remote', true, 'ping']]);
    assert.equal(http.sessions.size, 1);
    await http.expireSessions();
    clock.advance(60_000);
    assert.deepEqual(await tick(), [['mcp:remote', true, 'initialize, ping']], 'the old session answered 404: a new one was made');
    assert.equal(http.sessions.size, 2);
    await http.close();
    clock.advance(60_000);
    const [gone] = await tick();
    assert.equal(gone?.[1], false);
    assert.equal((await store.probes.list())[0]?.ok, false);
  });

  it('bad health config on an MCP server is refused at load, naming the field', async (t) => {
    const { dir, cleanup } = await tempStore();
    t.after(cleanup);
    const issues = async (health: Json) => {
      try {
        await compileIn(dir, { mcp: { servers: { local: { command: STDIO, health } } }, agents: AGENTS }, false);
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        return err.issues.map((i) => i.path);
      }
      assert.fail('expected a ConfigError');
    };
    assert.deepEqual(await issues({ probe: 'ping', command: ['./x'] }), ['mcp.servers.local.health.probe']);
    assert.deepEqual(await issues({ probe: 'handshake', every: 'often' }), ['mcp.servers.local.health.every']);
    assert.deepEqual(await issues({ probe: 'handshake', url: 'http://x/health' }), ['mcp.servers.local.health.url']);
    assert.deepEqual(await issues({ probe: 'knock' }), ['mcp.servers.local.health.probe']);
    assert.deepEqual(await issues({ probe: 'handshake', timeoutMs: 0 }), ['mcp.servers.local.health.timeoutMs']);
    // Valid without connecting (spine send, spine doctor): checked, never run there.
    const ok = await compileIn(dir, { mcp: { servers: { local: { command: STDIO, health: { probe: 'handshake' } } } }, agents: AGENTS }, false);
    assert.equal(ok.registry.serverProbes, undefined);
  });
});
