import { z } from 'zod';
import type { FieldIssue } from '../core/errors.ts';

/** `gateway` in spine.config.json5: where the HTTP server listens and what it accepts. */
export const gatewaySchema = z.strictObject({
  host: z.string().min(1).optional(),
  port: z.number().int().min(0).max(65535).optional(),
  /** Largest request body accepted, in bytes (default 1 MiB). */
  bodyLimitBytes: z.number().int().positive().optional(),
});

export type GatewayConfig = z.infer<typeof gatewaySchema>;

export interface GatewaySettings {
  host: string;
  port: number;
  bodyLimitBytes: number;
}

export function compileGateway(raw: GatewayConfig | undefined, _issues: FieldIssue[]): GatewaySettings {
  return { host: raw?.host ?? '127.0.0.1', port: raw?.port ?? 7400, bodyLimitBytes: raw?.bodyLimitBytes ?? 1024 * 1024 };
}
