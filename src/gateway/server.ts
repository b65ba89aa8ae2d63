import { createAdaptorServer, upgradeWebSocket } from '@hono/node-server';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import type { AuditKeys } from '../audit/checkpoint.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import { InvalidInputError } from '../core/errors.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import type { AgentDirectory } from './directory.ts';
import type { ChannelAdapter } from '../core/channel.ts';
import type { Intake } from '../intake/intake.ts';
import type { Store } from '../store/store.ts';
import type { MetricsExposition } from '../core/meter.ts';
import { createGateway, type Gateway } from './app.ts';
import type { MeshShim } from '../engine/mesh-shim.ts';
import { isLoopbackHost, type GatewaySettings } from './config.ts';

/** Binding to a non-loopback address while no live API token exists: refused at start-up (exit code 2). */
export class InsecureBindError extends InvalidInputError {
  constructor(host: string) {
    super(
      'gateway.host',
      `refusing to listen on ${host}: it is not a loopback address and no API token exists. ` +
        `Create one first (spine tokens create --name <name> --scope admin), or bind to 127.0.0.1`,
    );
  }
}

export interface StartGatewayOptions {
  store: Store;
  intake: Intake;
  /** `config.gateway`; host, port and allowAnonymousLoopback may be overridden below (CLI flags). */
  settings: GatewaySettings;
  host?: string;
  port?: number;
  allowAnonymousLoopback?: boolean;
  channels?: ReadonlyMap<string, ChannelAdapter> | (() => ReadonlyMap<string, ChannelAdapter>);
  /** The agents offered over A2A and MCP (follows config reloads). */
  agents?: AgentDirectory;
  clock?: Clock;
  log?: Logger;
  /** The audit keys from config (GET /v1/audit/verify checks checkpoint signatures with them). */
  auditKeys?: () => AuditKeys | null;
  /** What GET /metrics serves. */
  metrics?: MetricsExposition;
  /** The mesh shim of this process's workers; its origin is set to this gateway's once it listens. */
  shim?: MeshShim;
}

export interface RunningGateway {
  /** e.g. http://127.0.0.1:7400 */
  url: string;
  host: string;
  port: number;
  gateway: Gateway;
  /**
   * Drains and stops: no new connections; /readyz answers 503; event streams end
   * (clients resume elsewhere from their cursor); in-flight requests finish (up to
   * gateway.drainMs, then connections are cut). Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Starts the gateway on a real server (default 127.0.0.1:7400; port 0 picks a free
 * one). Refuses a non-loopback host unless a live API token exists, and anonymous
 * access anywhere but loopback.
 */
export async function startGateway(opts: StartGatewayOptions): Promise<RunningGateway> {
  const settings: GatewaySettings = {
    ...opts.settings,
    ...(opts.host !== undefined ? { host: opts.host } : {}),
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    ...(opts.allowAnonymousLoopback !== undefined ? { allowAnonymousLoopback: opts.allowAnonymousLoopback } : {}),
  };
  const log = opts.log ?? silentLogger;
  const loopback = isLoopbackHost(settings.host);
  if (settings.allowAnonymousLoopback && !loopback) {
    throw new InvalidInputError('--insecure-local / gateway.allowAnonymousLoopback', `anonymous access is only allowed on a loopback host, not ${settings.host}`);
  }
  const anyToken = await opts.store.tokens.anyLive();
  if (!loopback && !anyToken) throw new InsecureBindError(settings.host);
  if (settings.allowAnonymousLoopback) {
    log.warn(`gateway: anonymous access is ON (--insecure-local / gateway.allowAnonymousLoopback): local requests without a token act as admin`);
  } else if (!anyToken) {
    log.warn('gateway: no API token exists, so every /v1 request will be refused; create one with `spine tokens create --name <name> --scope admin`');
  }

  const gateway = createGateway({
    store: opts.store,
    intake: opts.intake,
    settings,
    clock: opts.clock ?? systemClock,
    log,
    // The edge supplies the WebSocket upgrade; the app itself stays free of Node adapters.
    upgradeWebSocket,
    ...(opts.channels ? { channels: opts.channels } : {}),
    ...(opts.agents ? { agents: opts.agents } : {}),
    ...(opts.auditKeys ? { auditKeys: opts.auditKeys } : {}),
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    ...(opts.shim ? { shim: opts.shim } : {}),
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  const server = createAdaptorServer({ fetch: gateway.app.fetch, hostname: settings.host, websocket: { server: wss } }) as Server;
  server.keepAliveTimeout = 65_000;
  // Connection bookkeeping for a clean drain: requests in flight per socket, and upgraded (WebSocket) sockets.
  const sockets = new Set<Socket>();
  const inFlight = new Map<Socket, number>();
  const upgraded = new WeakSet<Socket>();
  let draining = false;
  const endIfIdle = (s: Socket) => {
    if (draining && !upgraded.has(s) && (inFlight.get(s) ?? 0) === 0) s.end();
  };
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => {
      sockets.delete(s);
      inFlight.delete(s);
    });
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const s = req.socket;
    inFlight.set(s, (inFlight.get(s) ?? 0) + 1);
    res.once('close', () => {
      inFlight.set(s, (inFlight.get(s) ?? 1) - 1);
      endIfIdle(s);
    });
  });
  wss.on('connection', (_ws, req: IncomingMessage) => upgraded.add(req.socket));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE') reject(new InvalidInputError('gateway.port', `${settings.host}:${settings.port} is already in use (choose another with --port)`));
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') reject(new InvalidInputError('gateway.host', `cannot listen on ${settings.host}: ${err.code}`));
      else reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(settings.port, settings.host);
  });
  const { port } = server.address() as AddressInfo;
  const hostPart = settings.host.includes(':') && !settings.host.startsWith('[') ? `[${settings.host}]` : settings.host;
  const url = `http://${hostPart}:${port}`;
  // Where this process's external agents call the mesh shim: a wildcard bind is reached on loopback.
  if (opts.shim) opts.shim.origin = settings.host === '0.0.0.0' || settings.host === '::' ? `http://127.0.0.1:${port}` : url;

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      draining = true;
      // Turns that start from now on get no capability (the ones in flight keep theirs while requests drain).
      if (opts.shim) opts.shim.origin = null;
      // Readiness goes 503 and event streams end (SSE responses complete; WebSockets get 1001).
      gateway.drain();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const ws of wss.clients) ws.close(1001, 'shutdown');
      // Idle keep-alive connections (and ones that never sent a request) are ended now;
      // busy ones right after their response.
      for (const s of sockets) endIfIdle(s);
      const deadline = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), settings.drainMs).unref());
      const outcome = await Promise.race([closed.then(() => 'closed' as const), deadline]);
      if (outcome === 'timeout') {
        log.warn(`gateway: ${sockets.size} connection(s) still open after ${settings.drainMs} ms; cutting them`);
        for (const ws of wss.clients) ws.terminate();
        for (const s of sockets) s.destroy();
        await closed;
      }
    })());

  return { url, host: settings.host, port, gateway, close };
}
