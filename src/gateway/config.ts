import { z } from 'zod';
import type { FieldIssue } from '../core/errors.ts';

/** `gateway` in spine.config.json5: where the HTTP server listens and what it accepts (docs/gateway.md). */
export const gatewaySchema = z.strictObject({
  /** Address to bind (default 127.0.0.1). A non-loopback address needs at least one live API token. */
  host: z.string().min(1).optional(),
  /** TCP port (default 7400; 0 picks a free one). */
  port: z.number().int().min(0).max(65535).optional(),
  /** Largest request body accepted, in bytes (default 1 MiB); larger bodies get a 413. */
  bodyLimitBytes: z.number().int().positive().max(64 * 1024 * 1024).optional(),
  /**
   * Requests without a token are let in as `anonymous` (admin) — only while the gateway
   * is bound to a loopback address, and only from loopback Host/Origin headers. Off by
   * default: tokens are required. The same as `spine gateway --insecure-local`.
   */
  allowAnonymousLoopback: z.boolean().optional(),
  /**
   * How often the event stream looks for audit events committed by other processes
   * (workers in another process), in ms (default 200). Commits made in this process
   * are pushed at once.
   */
  eventPollMs: z.number().int().min(10).max(60_000).optional(),
  /** On shutdown, how long in-flight requests may take before connections are cut, in ms (default 5000). */
  drainMs: z.number().int().min(0).max(600_000).optional(),
});

export type GatewayConfig = z.infer<typeof gatewaySchema>;

export interface GatewaySettings {
  host: string;
  port: number;
  bodyLimitBytes: number;
  allowAnonymousLoopback: boolean;
  eventPollMs: number;
  drainMs: number;
}

export const DEFAULT_GATEWAY: GatewaySettings = {
  host: '127.0.0.1',
  port: 7400,
  bodyLimitBytes: 1024 * 1024,
  allowAnonymousLoopback: false,
  eventPollMs: 200,
  drainMs: 5_000,
};

export function compileGateway(raw: GatewayConfig | undefined, issues: FieldIssue[]): GatewaySettings {
  const s: GatewaySettings = {
    host: raw?.host ?? DEFAULT_GATEWAY.host,
    port: raw?.port ?? DEFAULT_GATEWAY.port,
    bodyLimitBytes: raw?.bodyLimitBytes ?? DEFAULT_GATEWAY.bodyLimitBytes,
    allowAnonymousLoopback: raw?.allowAnonymousLoopback ?? DEFAULT_GATEWAY.allowAnonymousLoopback,
    eventPollMs: raw?.eventPollMs ?? DEFAULT_GATEWAY.eventPollMs,
    drainMs: raw?.drainMs ?? DEFAULT_GATEWAY.drainMs,
  };
  if (s.allowAnonymousLoopback && !isLoopbackHost(s.host)) {
    issues.push({ path: 'gateway.allowAnonymousLoopback', message: `only allowed on a loopback host; gateway.host is ${s.host}` });
  }
  return s;
}

/** 127.0.0.0/8, ::1 and localhost. `0.0.0.0` and `::` listen on every interface: not loopback. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice('::ffff:'.length) : h;
  return /^127(\.\d{1,3}){3}$/.test(v4);
}
