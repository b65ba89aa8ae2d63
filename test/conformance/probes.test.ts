// Health probes (docs/health.md), on the store the suite runs on: an HTTP agent's probe
// against a real server that starts failing opens its breaker, and passing again
// closes it through half-open; a command agent's ping probe; two workers' probers on
// one store run a due probe once; a probe that does not fit its agent is refused at
// load, naming the field. Time is a ManualClock; nothing sleeps.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { buildProbe } from '../../src/agents/probes.ts';
import type { HealthProbe } from '../../src/core/agent.ts';
import { ManualClock } from '../../src/core/clock.ts';
import type { FieldIssue } from '../../src/core/issues.ts';
import { BreakerBoard, DEFAULT_BREAKERS } from '../../src/validation/breakers.ts';
import { Prober } from '../../src/validation/probes.ts';
import { Worker } from '../../src/engine/worker.ts';
import { registry, tempStore, until } from '../helpers.ts';

const START = Date.UTC(2026, 0, 1);

async function server(t: { after: (fn: () => Promise<void>) => void }) {
  const state = { status: 200, hits: 0 };
  const s = createServer((req, res) => {
    state.hits++;
    res.writeHead(req.url === '/health' ? state.status : 404, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  t.after(() => new Promise<void>((ok) => s.close(() => ok())));
  return { state, url: `http://127.0.0.1:${(s.address() as AddressInfo).port}` };
}

function probe(cfg: Parameters<typeof buildProbe>[0], target: Parameters<typeof buildProbe>[1]): HealthProbe {
  const issues: FieldIssue[] = [];
  const p = buildProbe(cfg, target, 'agents.a.health', issues);
  assert.deepEqual(issues, []);
  return p!;
}

describe('health probes', () => {
  it('an HTTP probe against a server that starts failing opens the breaker; passing again closes it via half-open', async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const srv = await server(t);
    const clock = new ManualClock(START);
    const board = new BreakerBoard(store.breakers, { ...DEFAULT_BREAKERS, failures: 2, cooldownMs: 60_000, refreshMs: 0 }, clock, 'wrk_a');
    const p = probe({ probe: 'http', path: '/health', every: '30s' }, { kind: 'http', url: `${srv.url}/turn`, dir: process.cwd() });
    const prober = new Prober({ store: store.probes, clock, owner: 'wrk_a', entries: [{ key: 'agent:remote', probe: p }], board });

    let r = await prober.tick();
    assert.deepEqual(r.ran.map((o) => o.ok), [true]);
    assert.equal(r.sleepMs, 30_000);
    assert.deepEqual((await prober.tick()).ran, [], 'not due again before `every`');

    srv.state.status = 500;
    for (let i = 0; i < 2; i++) {
      clock.advance(30_000);
      r = await prober.tick();
      assert.deepEqual(r.ran.map((o) => [o.ok, o.detail]), [[false, `GET ${srv.url}/health: HTTP 500`]]);
    }
    const open = await store.breakers.get('agent:remote');
    assert.equal(open?.state, 'open', 'two failed probes opened it');
    assert.match(open?.lastError ?? '', /^probe: GET .* HTTP 500/);
    const [stored] = await store.probes.list();
    assert.equal(stored?.ok, false);
    assert.equal(stored?.checkedAt, START + 60_000);

    srv.state.status = 200;
    clock.advance(30_000); // passing, but within the cooldown: it stays open
    await prober.tick();
    assert.equal((await store.breakers.get('agent:remote'))?.state, 'open');
    clock.advance(30_000); // the cooldown has passed
    await prober.tick();
    assert.equal((await store.breakers.get('agent:remote'))?.state, 'closed');
    const kinds = (await store.audit.list({ limit: 100 })).map((e) => e.kind);
    assert.deepEqual(kinds, ['breaker.opened', 'breaker.half-open', 'breaker.closed']);
    assert.equal((await store.probes.list())[0]?.ok, true);
  });

  it("a command agent's ping probe runs its argv: exit 0 is healthy, anything else is not", async (t) => {
    const { store, dir, cleanup } = await tempStore();
    t.after(cleanup);
    const clock = new ManualClock(START);
    const flag = `${dir}/down`;
    const script = `process.exit(require('node:fs').existsSync(${JSON.stringify(flag)}) ? 3 : 0)`;
    const p = probe({ probe: 'ping', command: [process.execPath, '-e', script], every: '1m', timeoutMs: 20_000 }, { kind: 'command', dir });
    const prober = new Prober({ store: store.probes, clock, owner: 'wrk_a', entries: [{ key: 'agent:local', probe: p }], board: null });
    assert.deepEqual((await prober.tick()).ran, [{ key: 'agent:local', ok: true, detail: 'exit 0' }]);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(flag, '');
    clock.advance(60_000);
    assert.deepEqual((await prober.tick()).ran, [{ key: 'agent:local', ok: false, detail: 'exit 3' }]);
    assert.equal((await store.probes.list())[0]?.detail, 'exit 3');
  });

  it("two workers' probers: a due probe runs once, where its lease was won", async (t) => {
    const { store, cleanup } = await tempStore();
    t.after(cleanup);
    const srv = await server(t);
    const clock = new ManualClock(START);
    const p = probe({ probe: 'http', url: `${srv.url}/health` }, { kind: 'http', url: srv.url, dir: process.cwd() });
    const a = new Prober({ store: store.probes, clock, owner: 'wrk_a', entries: [{ key: 'agent:remote', probe: p }], board: null });
    const b = new Prober({ store: store.probes, clock, owner: 'wrk_b', entries: [{ key: 'agent:remote', probe: p }], board: null });
    const [ra, rb] = await Promise.all([a.tick(), b.tick()]);
    assert.equal(ra.ran.length + rb.ran.length, 1);
    assert.equal(srv.state.hits, 1);
    clock.advance(30_000);
    await Promise.all([a.tick(), b.tick()]);
    assert.equal(srv.state.hits, 2, 'once per period across both');
  });

  it("a started worker runs its agents' probes on its clock", async (t) => {
    const { store, cleanup } = await tempStore();
    const clock = new ManualClock(START);
    let checks = 0;
    const counting: HealthProbe = { kind: 'ping', everyMs: 30_000, timeoutMs: 1_000, check: async () => `check ${++checks}` };
    const reg = registry({ a: () => ({ output: null }) });
    reg.agents.get('a')!.probe = counting;
    const worker = new Worker({ store, registry: reg, clock, options: { livenessMs: 0 } });
    await worker.start();
    t.after(async () => {
      await worker.stop();
      await cleanup();
    });
    await until('the first probe ran', async () => (await store.probes.list())[0]?.detail === 'check 1');
    clock.advance(30_000);
    await until('the next one ran once due', async () => (await store.probes.list())[0]?.detail === 'check 2');
    assert.equal(checks, 2);
  });

  it('a probe that does not fit its agent is refused, naming the field', () => {
    const issues: FieldIssue[] = [];
    buildProbe({ probe: 'http', url: 'http://x/health' }, { kind: 'command', dir: '.' }, 'agents.a.health', issues);
    buildProbe({ probe: 'ping' }, { kind: 'function', dir: '.' }, 'agents.b.health', issues);
    buildProbe({ probe: 'ping' }, { kind: 'command', dir: '.' }, 'agents.c.health', issues);
    buildProbe({ probe: 'handshake', every: 'often' }, { kind: 'a2a', url: 'http://x', dir: '.' }, 'agents.d.health', issues);
    assert.deepEqual(
      issues.map((i) => i.path),
      ['agents.a.health.probe', 'agents.b.health', 'agents.c.health.command', 'agents.d.health.every'],
    );
  });
});
