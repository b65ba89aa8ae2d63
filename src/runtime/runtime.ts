import { AuditSealer } from '../audit/sealer.ts';
import { createChannels } from '../channels/index.ts';
import type { CompiledConfig } from '../config/load.ts';
import { ConfigWatcher } from '../config/watch.ts';
import type { ChannelAdapter } from '../core/channel.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import type { MetricsExposition } from '../core/meter.ts';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { OutboxDispatcher } from '../engine/outbox-dispatcher.ts';
import { Worker } from '../engine/worker.ts';
import { directoryFromConfig, type AgentInfo } from '../gateway/directory.ts';
import type { RunningGateway } from '../gateway/server.ts';
import { MeshShim } from '../engine/mesh-shim.ts';
import { Intake } from '../intake/intake.ts';
import { RoutingSweep } from '../intake/routing-sweep.ts';
import { MemorySweeper } from '../memory/sweeper.ts';
import { EmbeddingBackfill } from '../memory/embed-backfill.ts';
import { MergeQueue } from '../memory/merge-queue.ts';
import { intakeDispatch } from './merge-dispatch.ts';
import { requireVectors } from '../memory/vectors.ts';
import { embedderFor } from '../engine/memory-actions.ts';
import { Scheduler } from '../intake/schedules/scheduler.ts';
import type { Store } from '../store/store.ts';
import { closeMcpClients, loadConfig } from './config.ts';
import { refreshMcpCatalog } from './mcp-catalog.ts';
import type { Service } from './service.ts';

/** The services a process can run. */
export const SERVICES = ['mcp-clients', 'gateway', 'mcp-stdio', 'outbox', 'worker', 'routing-sweep', 'scheduler', 'memory-sweep', 'audit-sealer', 'config-watch'] as const;
export type ServiceName = (typeof SERVICES)[number];

/** What each command runs; the commands differ in nothing else. */
export const ROLES = {
  up: ['mcp-clients', 'gateway', 'outbox', 'worker', 'routing-sweep', 'scheduler', 'memory-sweep', 'audit-sealer', 'config-watch'],
  worker: ['mcp-clients', 'outbox', 'worker', 'routing-sweep', 'scheduler', 'memory-sweep', 'audit-sealer', 'config-watch'],
  gateway: ['gateway', 'config-watch'],
  mcp: ['mcp-stdio', 'config-watch'],
} as const satisfies Record<string, readonly ServiceName[]>;

/**
 * Shutdown order: stop watching for reloads, stop taking work in (gateway, stdio MCP,
 * schedules, the routing sweep), drain the worker, then the outbox it fed, then the
 * MCP connections its turns used. Start order is `SERVICES`.
 */
const STOP_ORDER: readonly ServiceName[] = ['config-watch', 'gateway', 'mcp-stdio', 'scheduler', 'routing-sweep', 'memory-sweep', 'audit-sealer', 'worker', 'outbox', 'mcp-clients'];

export interface RuntimeOptions {
  /** A compiled config (src/config/load.ts). */
  config: CompiledConfig;
  /** An open store (src/runtime/open-store.ts); the runtime closes it in `close`. */
  store: Store;
  /** Which services to run, e.g. ROLES.up. */
  services: readonly ServiceName[];
  clock?: Clock;
  log?: Logger;
  /** CLI overrides of the gateway settings. */
  gateway?: { host?: string; port?: number; allowAnonymousLoopback?: boolean };
  worker?: { concurrency?: number };
  /** `spine mcp`: the name the stdio client acts under in the audit trail. */
  mcp?: { name: string };
  /** `spine worker --metrics-port`: serve GET /metrics on its own port (the gateway serves /metrics itself). */
  metrics?: { port: number; host?: string };
  /**
   * Traces (docs/observability.md): an exporter, or `env` to follow OTEL_TRACES_EXPORTER
   * (off unless set). Default: off.
   */
  traces?: { exporter: SpanExporter } | 'env';
  /** How a changed config file is compiled (config-watch); default: ./config.ts loadConfig. */
  load?: (file: string) => Promise<CompiledConfig>;
}

/**
 * The one composition root: builds the services of a Spine process from a compiled
 * config and a store, gives them one lifecycle, wires config reload once, and shuts
 * down in order — every reader stopped before the store closes. `spine up`,
 * `spine worker`, `spine gateway` and `spine mcp` differ only in the services they
 * choose (ROLES).
 */
export class Runtime {
  readonly store: Store;
  readonly clock: Clock;
  readonly log: Logger;
  readonly intake: Intake;
  config: CompiledConfig;
  /** Set by the gateway service once it listens. */
  gateway: RunningGateway | null = null;
  readonly worker: Worker | null = null;
  readonly dispatcher: OutboxDispatcher | null = null;
  readonly scheduler: Scheduler | null = null;
  readonly sealer: AuditSealer | null = null;
  /** The mesh shim (docs/mesh.md): set when this process runs a worker and the gateway, which serves it to the worker's external agents. */
  readonly shim: MeshShim | null = null;
  /** `spine mcp`: resolves when the stdio client hangs up. */
  readonly mcpClosed: Promise<void> | null = null;
  private channels: ReadonlyMap<string, ChannelAdapter>;
  private directory: AgentInfo[];
  private readonly builtIn = new Map<ServiceName, Service>();
  private readonly before: Service[] = [];
  private readonly after: Service[] = [];
  private started: Service[] = [];
  private stopping: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private metricsLoad: Promise<MetricsExposition> | null = null;
  /** The audit seq when this process started: its counters count what commits after it. */
  private startSeq: number | null = null;
  /** What /metrics serves: Spine's instruments, loaded (prom-client and all) on the first scrape. */
  readonly metrics: MetricsExposition = {
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    render: async () => (await this.loadMetrics()).render(),
  };
  /**
   * Resolves with the reason if the store is lost under this process (its SQLite file
   * deleted or replaced): writes already fail with 503, so nothing more is
   * acknowledged; the command drains and exits non-zero.
   */
  readonly storeLost: Promise<string>;
  /** Set when a service could not stop cleanly (e.g. the drain could not write to a full disk): the command exits unavailable. */
  stopFailed = false;

  constructor(opts: RuntimeOptions) {
    this.store = opts.store;
    this.config = opts.config;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
    this.storeLost = new Promise<string>((resolve) =>
      this.store.onLost((reason) => {
        this.log.error(`store lost: ${reason}; no more work is acknowledged, draining and exiting`);
        resolve(reason);
      }),
    );
    const { config, store, clock, log } = this;
    this.intake = new Intake(store, config.registry, config.routing, clock);
    this.channels = createChannels(config.channels);
    this.directory = directoryFromConfig(config);
    const want = new Set(opts.services);
    if (want.has('worker') && want.has('gateway')) this.shim = new MeshShim();
    // A store that wakes other processes (PostgreSQL NOTIFY) needs only slow fallback polls.
    const crossProcess = store.capabilities.crossProcessWakeups;

    // `{env}` secrets are read when used; a process that serves channels says at once which are missing.
    if (want.has('gateway') || want.has('outbox')) {
      for (const u of config.channels.unset ?? []) log.warn(`${u.path}: ${u.message}; this channel fails (SECRET_UNSET) until it is set`);
    }
    for (const w of config.warnings ?? []) log.warn(`${w.path}: ${w.message}`);
    if (want.has('mcp-clients')) {
      // Connections are made while the config compiles (connect: true) and reused by reloads; closed last.
      // The tools each server listed go to the store's catalog, for the commands that do not connect.
      this.builtIn.set('mcp-clients', {
        name: 'mcp-clients',
        start: () => refreshMcpCatalog(store, this.config, clock.now()),
        stop: () => closeMcpClients(),
        reconfigure: (next) => refreshMcpCatalog(store, next, clock.now()),
      });
    }
    if (want.has('gateway')) {
      const overrides = opts.gateway ?? {};
      this.builtIn.set('gateway', {
        name: 'gateway',
        start: async () => {
          // The gateway and its HTTP stack (hono, ws, the Node adapter, undici) load only where it runs: not in `spine worker`.
          const { startGateway } = await import('../gateway/server.ts');
          this.gateway = await startGateway({
            store,
            intake: this.intake,
            settings: this.config.gateway,
            ...overrides,
            channels: () => this.channels,
            agents: () => this.directory,
            auditKeys: () => this.config.audit.keys(),
            clock,
            log,
            metrics: this.metrics,
            ...(this.shim ? { shim: this.shim } : {}),
          });
        },
        stop: async () => {
          const gw = this.gateway;
          if (!gw) return;
          await gw.close();
          await gw.gateway.events.closing();
        },
      });
    }
    if (want.has('mcp-stdio')) {
      let closed!: () => void;
      this.mcpClosed = new Promise<void>((resolve) => (closed = resolve));
      let server: { close(): Promise<void> } | null = null;
      this.builtIn.set('mcp-stdio', {
        name: 'mcp-stdio',
        start: async () => {
          // The MCP SDK loads only for `spine mcp`.
          const [{ createSpineMcpServer }, { StdioServerTransport }] = await Promise.all([import('../gateway/mcp.ts'), import('@modelcontextprotocol/sdk/server/stdio.js')]);
          const mcp = createSpineMcpServer({ store, intake: this.intake, clock, agents: () => this.directory }, { name: opts.mcp?.name ?? 'mcp-stdio', tokenId: null, scopes: ['admin'] });
          mcp.server.onclose = closed;
          server = mcp;
          await mcp.connect(new StdioServerTransport());
        },
        stop: async () => {
          await server?.close().catch(() => {});
        },
      });
    }
    if (want.has('outbox')) {
      const outbox = config.channels.outbox;
      const dispatcher = new OutboxDispatcher({ store, channels: this.channels, options: { ...outbox, pollMs: crossProcess ? Math.max(outbox.pollMs, 5_000) : outbox.pollMs }, clock, log });
      this.dispatcher = dispatcher;
      this.builtIn.set('outbox', { name: 'outbox', start: () => dispatcher.start(), stop: () => dispatcher.stop(), reconfigure: () => dispatcher.reconfigure(this.channels) });
    }
    if (want.has('worker')) {
      const worker = new Worker({
        store,
        registry: config.registry,
        options: { ...config.worker, ...(opts.worker?.concurrency ? { concurrency: opts.worker.concurrency } : {}) },
        historyLimit: config.routing.sessions.historyLimit,
        clock,
        log,
        // Streamed model tokens go to live event-stream subscribers only (never the audit log).
        onAgentEvent: (e) => this.gateway?.gateway.events.publishEphemeral(e.kind, e.runId, e),
        ...(this.shim ? { shim: this.shim } : {}),
      });
      this.worker = worker;
      this.builtIn.set('worker', {
        name: 'worker',
        start: () => worker.start(),
        stop: () => worker.stop(),
        reconfigure: (next) => worker.reconfigure({ registry: next.registry, historyLimit: next.routing.sessions.historyLimit }),
      });
    }
    if (want.has('memory-sweep')) {
      // The memory service: the TTL sweep, the merge queue (agent and human strategies) and, with memory.embedder, the embedding backfill.
      const sweeper = new MemorySweeper({ store, clock, log, everyMs: config.registry.memory.sweepEveryMs });
      const backfill = new EmbeddingBackfill({ store, clock, log, settings: config.registry.memory.embedder, embed: embedderFor(config.registry) });
      // Merge agents are dispatched through intake, as an envelope addressed to the agent, isolated from any session.
      const merges = new MergeQueue({
        store,
        clock,
        log,
        settings: config.registry.memory,
        dispatch: intakeDispatch(this.intake),
      });
      this.builtIn.set('memory-sweep', {
        name: 'memory-sweep',
        start: async () => {
          sweeper.start();
          backfill.start();
          merges.start();
        },
        stop: async () => {
          await merges.stop();
          await backfill.stop();
          await sweeper.stop();
        },
        reconfigure: (c) => {
          sweeper.reconfigure(c.registry.memory.sweepEveryMs);
          backfill.reconfigure(c.registry.memory.embedder, embedderFor(c.registry));
          merges.reconfigure(c.registry.memory);
        },
      });
    }
    if (want.has('routing-sweep')) {
      const sweep = new RoutingSweep({ store, intake: this.intake, clock, log, everyMs: crossProcess ? 5_000 : 500 });
      this.builtIn.set('routing-sweep', { name: 'routing-sweep', start: async () => sweep.start(), stop: () => sweep.stop() });
    }
    if (want.has('scheduler')) {
      const scheduler = new Scheduler({ store, intake: this.intake, schedules: config.schedules, clock, log });
      this.scheduler = scheduler;
      this.builtIn.set('scheduler', {
        name: 'scheduler',
        start: () => scheduler.start(),
        stop: () => scheduler.stop(),
        reconfigure: (next) => scheduler.reconfigure(next.schedules),
      });
    }
    if (want.has('audit-sealer')) {
      // Seals only when an audit key is configured (docs/audit.md); follows config reloads.
      const sealer = new AuditSealer({
        audit: store.audit,
        keys: () => this.config.audit.keys(),
        everyMs: () => this.config.audit.sealEveryMs,
        witness: () => this.config.audit.witness,
        clock,
        log,
      });
      this.sealer = sealer;
      this.builtIn.set('audit-sealer', { name: 'audit-sealer', start: async () => sealer.start(), stop: () => sealer.stop() });
    }
    if (opts.metrics) {
      const { port, host } = opts.metrics;
      let server: { url: string; close(): Promise<void> } | null = null;
      // First up, last down: the drain can be watched.
      this.before.push({
        name: 'metrics',
        start: async () => {
          const { startMetricsServer } = await import('../observability/metrics-server.ts');
          server = await startMetricsServer(this.metrics, { port, ...(host ? { host } : {}) });
          log.info(`metrics: ${server.url}`);
        },
        stop: async () => {
          await server?.close();
        },
      });
    }
    if (opts.traces) {
      const choice = opts.traces;
      let feed: { stop(): Promise<void> } | null = null;
      this.before.push({
        name: 'traces',
        start: async () => {
          // Nothing asked for traces: the OpenTelemetry SDK (~130 modules) is not even loaded.
          // Read as exporterFromEnv reads it, where '' means none too.
          if (choice === 'env' && ['none', ''].includes((process.env.SPINE_TRACES ?? process.env.OTEL_TRACES_EXPORTER ?? 'none').trim())) return;
          const { startTraceFeed, exporterFromEnv } = await import('../observability/trace-feed.ts');
          const exporter = choice === 'env' ? exporterFromEnv(process.env) : choice.exporter;
          if (!exporter) return;
          feed = startTraceFeed({ store, clock, log, exporter, fromSeq: await store.audit.latestSeq() });
        },
        stop: async () => {
          await feed?.stop();
        },
      });
    }
    if (want.has('config-watch')) {
      const watcher = new ConfigWatcher(config.file, (next) => this.reload(next), log, { clock, load: opts.load ?? ((file) => loadConfig(file)) });
      this.builtIn.set('config-watch', { name: 'config-watch', start: async () => watcher.start(), stop: () => watcher.close() });
    }
  }

  /**
   * Adds a command's own service (e.g. the live log, or `up --send`). `before` services
   * start before the built-in ones and stop after them (a reader that should see the
   * drain); `after` services start last and stop first.
   */
  add(service: Service, position: 'before' | 'after' = 'after'): void {
    if (this.started.length > 0 || this.stopping) throw new Error(`runtime: add ${service.name} before start`);
    (position === 'before' ? this.before : this.after).push(service);
  }

  /** Starts every service in order. If one fails, those already started are stopped and the error is thrown. */
  async start(): Promise<void> {
    const order = [...this.before, ...SERVICES.flatMap((n) => this.builtIn.get(n) ?? []), ...this.after];
    await requireVectors(this.store, this.config.registry.memory);
    if (this.builtIn.has('gateway') || this.before.some((s) => s.name === 'metrics')) this.startSeq = await this.store.audit.latestSeq();
    for (const s of order) {
      try {
        await s.start();
      } catch (err) {
        await this.stop();
        throw err;
      }
      this.started.push(s);
    }
  }

  /** Swaps in a reloaded config everywhere: intake, channels, the agent directory, then each service. */
  async reload(next: CompiledConfig): Promise<void> {
    await requireVectors(this.store, next.registry.memory);
    this.config = next;
    for (const w of next.warnings ?? []) this.log.warn(`${w.path}: ${w.message}`);
    this.intake.reconfigure(next.registry, next.routing);
    this.channels = createChannels(next.channels);
    this.directory = directoryFromConfig(next);
    for (const s of this.started) {
      try {
        await s.reconfigure?.(next);
      } catch (err) {
        this.log.error(`${s.name}: reload failed`, { error: err instanceof Error ? err.message : String(err) });
      }
    }
  }

  /** Stops every started service in shutdown order (each waits until it no longer reads the store). Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const builtIn = STOP_ORDER.flatMap((n) => this.builtIn.get(n) ?? []);
      const order = [...[...this.after].reverse(), ...builtIn, ...[...this.before].reverse()];
      for (const s of order) {
        if (!this.started.includes(s)) continue;
        try {
          await s.stop();
        } catch (err) {
          this.stopFailed = true;
          this.log.error(`${s.name}: stop failed`, { error: err instanceof Error ? err.message : String(err) });
        }
      }
      this.started = [];
    })();
    return this.stopping;
  }

  /** Stops everything, then closes the store. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.stop();
      try {
        await this.store.close();
      } catch (err) {
        this.stopFailed = true;
        this.log.error('store close failed', { error: err instanceof Error ? err.message : String(err) });
      }
    })();
    return this.closing;
  }

  private loadMetrics(): Promise<MetricsExposition> {
    this.metricsLoad ??= import('../observability/index.ts').then(({ createProcessMetrics }) =>
      createProcessMetrics({
        store: this.store,
        clock: this.clock,
        ...(this.startSeq !== null ? { fromSeq: this.startSeq } : {}),
        subscribers: () => this.gateway?.gateway.events.subscribers ?? 0,
        onError: (err) => this.log.warn('metrics: a store read failed; serving the last values', { error: err instanceof Error ? err.message : String(err) }),
      }),
    );
    return this.metricsLoad;
  }

  /** The channel adapters of the current config (for the CLI's summary line). */
  get channelNames(): string[] {
    return [...this.channels.keys()];
  }
}
