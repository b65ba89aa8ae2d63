/**
 * An MCP server's `handshake` health probe (docs/health.md): what the chosen check —
 * an MCP `ping` on the live connection — costs against the alternative of a fresh
 * handshake per probe (spawn the stdio server, `initialize`, close), measured in the
 * same run on the test fixture server, with an awaited no-op as the bare baseline.
 *
 *   node bench/mcp-probe.ts [--pings 500] [--spawns 20] [--json]
 *
 * Measurement only: percentiles per check and the ratio of medians.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { McpConnection, type ServerTarget } from '../src/tools/mcp/clients.ts';
import { benchArgs, wholeOption } from './harness.ts';
import { round, summarize } from './stats.ts';

const args = benchArgs('mcp-probe', { pings: { type: 'string' }, spawns: { type: 'string' }, json: { type: 'boolean', default: false } });
const PINGS = wholeOption('mcp-probe', 'pings', args.pings) ?? 500;
const SPAWNS = wholeOption('mcp-probe', 'spawns', args.spawns) ?? 20;
const target: ServerTarget = {
  kind: 'stdio',
  namespace: 'bench',
  only: null,
  timeoutMs: 60_000,
  connectTimeoutMs: 30_000,
  command: process.execPath,
  args: [join(import.meta.dirname, '..', 'test', 'fixtures', 'mcp-server.ts'), 'stdio'],
  env: {},
  cwd: process.cwd(),
};

async function timed(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

const signal = new AbortController().signal;
const bare = summarize(await timed(PINGS, async () => {}));
const live = new McpConnection(target);
await live.ping(signal); // connect once: the workers' connection exists before any probe
const ping = summarize(await timed(PINGS, () => live.ping(signal)));
await live.close();
const fresh = summarize(
  await timed(SPAWNS, async () => {
    const c = new McpConnection(target);
    await c.get();
    await c.close();
  }),
);

const load = loadavg().map((l) => round(l, 2));
const result = {
  load,
  baselineMs: { p50: round(bare.p50, 4) },
  pingMs: { p50: round(ping.p50), p99: round(ping.p99), n: PINGS },
  spawnInitializeCloseMs: { p50: round(fresh.p50), p99: round(fresh.p99), n: SPAWNS },
  freshOverPing: round(fresh.p50 / ping.p50, 1),
};
if (args.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(`MCP handshake probe, stdio fixture server (load average ${load.join(' ')})`);
  console.log(`  bare awaited no-op            p50 ${result.baselineMs.p50} ms`);
  console.log(`  ping on the live connection   p50 ${result.pingMs.p50} ms, p99 ${result.pingMs.p99} ms (${PINGS})`);
  console.log(`  spawn + initialize + close    p50 ${result.spawnInitializeCloseMs.p50} ms, p99 ${result.spawnInitializeCloseMs.p99} ms (${SPAWNS})`);
  console.log(`  a fresh handshake costs ${result.freshOverPing}× the ping (medians)`);
}
