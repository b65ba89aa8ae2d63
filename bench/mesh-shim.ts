/**
 * The mesh shim (docs/mesh.md, "Agents outside Spine"): what a direct call from an
 * agent outside Spine costs, against a bare loopback HTTP round trip measured in the
 * same run.
 *
 *   node bench/mesh-shim.ts [--calls 300] [--durability strict|fast] [--json]
 *
 * SQLite (a temp file). One HTTP agent turn makes the calls one after another, each
 * timed inside the agent: `POST /v1/mesh/call` to a no-op callee (capability check,
 * boundary, the pair's token with `mesh.call`, the callee's turn, `mesh.reply` and the
 * settlement, the HTTP round trip), interleaved with the baseline: the same body POSTed
 * to a bare node:http server that answers `{}` at once. Measurement only.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { createHttpAgent } from '../src/agents/http/config.ts';
import { systemClock } from '../src/core/clock.ts';
import type { FieldIssue } from '../src/core/errors.ts';
import type { Json, TurnInput } from '../src/core/types.ts';
import { MeshShim } from '../src/engine/mesh-shim.ts';
import type { Registry } from '../src/engine/options.ts';
import { Worker } from '../src/engine/worker.ts';
import { DEFAULT_GATEWAY } from '../src/gateway/config.ts';
import { startGateway } from '../src/gateway/server.ts';
import { Intake } from '../src/intake/intake.ts';
import { compileBindings } from '../src/routing/bindings.ts';
import { compileSessions } from '../src/routing/sessions.ts';
import { submitRun } from '../test/fixtures/submit-run.ts';
import { registry, tempStore, finished } from '../test/helpers.ts';
import { benchArgs, durabilityOption, wholeOption } from './harness.ts';
import { round, summarize } from './stats.ts';

const args = benchArgs('mesh-shim', { calls: { type: 'string' }, durability: { type: 'string', default: 'strict' }, json: { type: 'boolean', default: false } });
const CALLS = wholeOption('mesh-shim', 'calls', args.calls) ?? 300;
const WARMUP = Math.max(20, Math.floor(CALLS / 10));
const durability = durabilityOption('mesh-shim', args.durability);

async function post(url: string, body: Json): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await res.json();
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const bare = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
  const bareUrl = `http://127.0.0.1:${(bare.address() as AddressInfo).port}/`;

  const shimMs: number[] = [];
  const bareMs: number[] = [];
  const agentSrv = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const turn = JSON.parse(Buffer.concat(chunks).toString('utf8')) as TurnInput;
      void (async () => {
        const m = turn.mesh!;
        for (let i = 0; i < WARMUP + CALLS; i++) {
          const body = { token: m.token, agent: 'noop', input: { i } };
          const s = await post(m.url, body);
          const b = await post(bareUrl, body);
          if (i >= WARMUP) {
            shimMs.push(s);
            bareMs.push(b);
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ output: 'done' }));
      })();
    });
  });
  await new Promise<void>((r) => agentSrv.listen(0, '127.0.0.1', r));

  const issues: FieldIssue[] = [];
  const lead = createHttpAgent({ kind: 'http', url: `http://127.0.0.1:${(agentSrv.address() as AddressInfo).port}/`, retries: 0 }, { name: 'lead', dir: '.', path: 'agents.lead', issues, agentNames: ['lead'] });
  const reg: Registry = { ...registry({ lead: { agent: lead!, timeoutMs: 600_000, retry: { maxAttempts: 1 } }, noop: () => ({ output: null }) }), mesh: [{ from: 'lead', to: 'noop', maxPerMinute: 1_000_000, maxHops: 1 }] };
  const { store, cleanup } = await tempStore(durability);
  const shim = new MeshShim();
  const intake = new Intake(store, reg, { bindings: compileBindings([], [...reg.agents.keys()], issues), sessions: compileSessions(undefined, issues) }, systemClock);
  const gw = await startGateway({ store, intake, settings: DEFAULT_GATEWAY, host: '127.0.0.1', port: 0, shim });
  const worker = new Worker({ store, registry: reg, shim, options: { leaseMs: 30_000, heartbeatMs: 5_000 } });
  await worker.start();
  try {
    const { run } = await submitRun(store, reg, { agent: 'lead', input: null, actor: 'bench' }, Date.now());
    const done = await finished(store, run.id, 600_000);
    if (done.state !== 'succeeded') throw new Error(`the bench run ${done.state}: ${JSON.stringify(done.error)}`);
  } finally {
    await worker.stop();
    await gw.close();
    await cleanup();
    agentSrv.close();
    bare.close();
  }
  const s = summarize(shimMs);
  const b = summarize(bareMs);
  const result = {
    backend: 'sqlite',
    durability,
    calls: CALLS,
    load: loadavg().map((x) => round(x, 2)),
    shim: { p50: round(s.p50), p99: round(s.p99) },
    bare: { p50: round(b.p50), p99: round(b.p99) },
    ratioP50: round(s.p50 / b.p50, 2),
    addedP50: round(s.p50 - b.p50),
  };
  if (args.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`mesh shim, SQLite ${durability}, ${CALLS} calls, load ${result.load.join(' ')}`);
    console.log(`  bare loopback POST  p50 ${result.bare.p50} ms  p99 ${result.bare.p99} ms`);
    console.log(`  POST /v1/mesh/call  p50 ${result.shim.p50} ms  p99 ${result.shim.p99} ms  (${result.ratioP50}× bare; +${result.addedP50} ms)`);
  }
}

await main();
