/**
 * Observability bench (docs/observability.md):
 *
 *  1. W2 (no-op single-turn runs, one worker) with observability off, and on: /metrics
 *     scraped every second (Prometheus' default is 15 s) and the trace feed exporting to an in-memory exporter.
 *     Target: on is no more than 5% slower (ratio of tasks/s, same run).
 *  2. The dashboard's first load: bytes of `/` and `/dashboard.js` (target < 200 KB).
 *  3. A run's state change reaching an open dashboard at ~100 runs/s, measured in the
 *     browser: for each event the page applies, the page's clock minus the event's
 *     commit time (target p99 < 100 ms). Needs /usr/bin/chromium.
 *
 *   node bench/observability.ts [--tasks n] [--json]
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { chromium } from 'playwright-core';
import { systemClock } from '../src/core/clock.ts';
import { silentLogger } from '../src/core/log.ts';
import { newId } from '../src/core/ids.ts';
import { hashToken, newTokenSecret } from '../src/gateway/auth.ts';
import { DEFAULT_GATEWAY } from '../src/gateway/config.ts';
import { startGateway } from '../src/gateway/server.ts';
import { Intake } from '../src/intake/intake.ts';
import { createProcessMetrics } from '../src/observability/index.ts';
import { startTraceFeed } from '../src/observability/trace-feed.ts';
import { compileBindings } from '../src/routing/bindings.ts';
import { compileSessions } from '../src/routing/sessions.ts';
import { submitRun } from '../test/fixtures/submit-run.ts';
import { badOption, benchArgs, log, makeRegistry, openBenchStore, startWorker, wholeOption } from './harness.ts';
import { summarize } from './stats.ts';

const args = benchArgs('observability', { tasks: { type: 'string', default: '3000' }, json: { type: 'boolean', default: false }, rate: { type: 'string', default: '100' }, parts: { type: 'string', default: 'metrics,traces' }, 'w2-only': { type: 'boolean', default: false }, seconds: { type: 'string', default: '5' } });
const TASKS = wholeOption('observability', 'tasks', args.tasks);
// --rate (runs/s) and --seconds pace the dashboard probe: any positive number will do.
for (const option of ['rate', 'seconds'] as const) {
  const n = Number(args[option]);
  if (!/\S/.test(args[option]) || !Number.isFinite(n) || n <= 0) badOption('observability', `--${option} must be a positive number (got ${JSON.stringify(args[option])})`);
}
// --parts: what "on" turns on, metrics and/or traces (empty: neither, an on/off run that measures the noise).
if (args.parts.split(',').some((part) => part !== '' && part !== 'metrics' && part !== 'traces')) {
  badOption('observability', `--parts must list metrics and/or traces, comma-separated (got ${JSON.stringify(args.parts)})`);
}
const root = mkdtempSync(join(tmpdir(), 'spine-bench-obs-'));

async function w2(observed: boolean): Promise<{ perSec: number; cpuUsPerTask: number }> {
  const db = await openBenchStore(root, `w2-${observed ? 'on' : 'off'}-${newId('b')}`, 'fast');
  const registry = makeRegistry({ noop: () => ({ output: null }) });
  await Promise.all(Array.from({ length: TASKS }, () => submitRun(db.store, registry, { agent: 'noop', input: null }, Date.now())));
  const from = await db.store.audit.latestSeq();
  let scraper: NodeJS.Timeout | null = null;
  let feed: { stop(): Promise<void> } | null = null;
  const parts = args.parts.split(',');
  if (observed && parts.includes('metrics')) {
    const metrics = createProcessMetrics({ store: db.store, clock: systemClock, fromSeq: from });
    scraper = setInterval(() => void metrics.render(), 1_000);
  }
  if (observed && parts.includes('traces')) {
    feed = startTraceFeed({ store: db.store, clock: systemClock, log: silentLogger, exporter: new InMemorySpanExporter(), fromSeq: from });
  }
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const worker = await startWorker(db.store, registry);
  while ((await db.store.runs.list({ state: 'running', limit: 1 })).length > 0) await new Promise((r) => setTimeout(r, 20));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await worker.stop();
  if (scraper) clearInterval(scraper);
  await feed?.stop();
  await db.store.close();
  await db.cleanup();
  return { perSec: Math.round((TASKS / ms) * 1000), cpuUsPerTask: Math.round((cpu.user + cpu.system) / TASKS) };
}

async function dashboard(): Promise<{ firstLoadBytes: number; lag: ReturnType<typeof summarize> | null; runsPerSec: number }> {
  const db = await openBenchStore(root, 'dash', 'fast');
  const registry = makeRegistry({ echo: () => ({ output: 'ok' }) });
  const issues: never[] = [];
  const intake = new Intake(db.store, registry, { bindings: compileBindings([{ id: 'api', match: { channel: 'api' }, agent: 'echo' }], ['echo'], issues), sessions: compileSessions(undefined, issues) }, systemClock);
  const secret = newTokenSecret();
  await db.store.tokens.create({ id: newId('tok'), name: 'bench', hash: hashToken(secret), scopes: ['admin'] }, Date.now());
  const gw = await startGateway({ store: db.store, intake, settings: { ...DEFAULT_GATEWAY, port: 0 } });
  const worker = await startWorker(db.store, registry);
  const cookie = { cookie: `spine_session=${secret}` };
  const page1 = await (await fetch(gw.url + '/', { headers: cookie })).arrayBuffer();
  const script = await (await fetch(gw.url + '/dashboard.js')).arrayBuffer();
  const firstLoadBytes = page1.byteLength + script.byteLength;
  let lag = null;
  let runsPerSec = 0;
  if (existsSync('/usr/bin/chromium')) {
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    const page = await browser.newPage();
    await page.context().addCookies([{ name: 'spine_session', value: secret, url: gw.url }]);
    await page.goto(gw.url + '/#/runs');
    await page.waitForSelector('#conn.live');
    const rate = Number(args.rate);
    const seconds = Number(args.seconds);
    const t0 = Date.now();
    let sent = 0;
    while (Date.now() - t0 < seconds * 1000) {
      const due = Math.floor(((Date.now() - t0) / 1000) * rate);
      const batch: Promise<unknown>[] = [];
      for (; sent < due; sent++) batch.push(submitRun(db.store, registry, { agent: 'echo', input: null }, Date.now()));
      await Promise.all(batch);
      await new Promise((r) => setTimeout(r, 5));
    }
    runsPerSec = Math.round((sent / (Date.now() - t0)) * 1000);
    const latest = await db.store.audit.latestSeq();
    while (!(await page.evaluate(`Number(document.body.dataset.cursor) >= ${latest}`))) await new Promise((r) => setTimeout(r, 50));
    const lags = await page.evaluate<number[]>('window.spineLag');
    lag = summarize(lags);
    await browser.close();
  }
  await worker.stop();
  await gw.close();
  await db.store.close();
  await db.cleanup();
  return { firstLoadBytes, lag, runsPerSec };
}

try {
  log(`observability bench: W2 with ${TASKS} no-op runs, off/on alternating ×2`);
  const off: number[] = [];
  const on: number[] = [];
  const cpuOff: number[] = [];
  const cpuOn: number[] = [];
  for (let i = 0; i < 2; i++) {
    const a = await w2(false);
    const b = await w2(true);
    off.push(a.perSec);
    on.push(b.perSec);
    cpuOff.push(a.cpuUsPerTask);
    cpuOn.push(b.cpuUsPerTask);
  }
  const best = (xs: number[]) => Math.max(...xs);
  const d = args['w2-only'] ? { firstLoadBytes: 0, lag: null, runsPerSec: 0 } : await dashboard();
  const result = {
    w2: { tasks: TASKS, parts: args.parts, offPerSec: off, onPerSec: on, ratio: Math.round((best(on) / best(off)) * 1000) / 1000, cpuUsPerTaskOff: cpuOff, cpuUsPerTaskOn: cpuOn },
    firstLoadBytes: d.firstLoadBytes,
    dashboardLagMs: d.lag,
    runsPerSec: d.runsPerSec,
    targets: { 'W2 on/off ≥ 0.95': best(on) / best(off) >= 0.95, 'first load < 200 KB': d.firstLoadBytes < 200 * 1024, 'lag p99 < 100 ms': d.lag ? d.lag.p99 < 100 : null },
  };
  console.log(args.json ? JSON.stringify(result, null, 2) : result);
} finally {
  rmSync(root, { recursive: true, force: true });
}
