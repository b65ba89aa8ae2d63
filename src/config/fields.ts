import { z } from 'zod';

/**
 * Field schemas shared by every section of spine.config.json5, whichever room
 * declares the section (agent kinds, channels, tool sources). A leaf module: it
 * imports only zod, so adapters may use it without pulling in the config compiler.
 */

const positiveInt = z.number().int().positive();

/** A secret given inline, or read from an environment variable (`{env: 'NAME'}`). */
export const secretValue = z.union([z.string().min(1), z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') })]);
export type SecretValue = z.infer<typeof secretValue>;

/** An http(s) URL; a missing one is reported as required, not as malformed. */
export const httpUrl = z.url({ protocol: /^https?$/, error: (issue) => (issue.input === undefined ? undefined : 'must be an http:// or https:// URL') });

/** A health probe (docs/health.md): command, http and a2a agents and MCP servers; which fields apply depends on the probe. */
export const healthProbeSchema = z.strictObject({
  probe: z.enum(['ping', 'http', 'handshake']),
  /** How often (e.g. `30s`); default 30s. */
  every: z.union([z.string(), positiveInt]).optional(),
  /** How long one check may take; default 5000. */
  timeoutMs: positiveInt.optional(),
  /** ping: the argv to run (exit 0 is healthy). */
  command: z.array(z.string().min(1)).min(1).optional(),
  /** http: the URL to GET (a 2xx is healthy), or a path resolved against the agent's URL. */
  url: z.string().min(1).optional(),
  path: z.string().startsWith('/').optional(),
});
export type HealthProbeConfig = z.infer<typeof healthProbeSchema>;

export const retrySchema = z.strictObject({
  maxAttempts: positiveInt.max(100).optional(),
  initialMs: z.number().int().nonnegative().optional(),
  maxMs: z.number().int().nonnegative().optional(),
  factor: z.number().min(1).optional(),
  jitter: z.enum(['full', 'none']).optional(),
});

const CONTRACT_ID = /^(spine\/)?[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*@[1-9][0-9]*$/;
export const contractId = z.string().regex(CONTRACT_ID, 'contract ids are name@version, e.g. research.request@2');

/** Estimated spend, reserved against cost ceilings before the crossing happens. */
export const cost = z.strictObject({
  usd: z.number().nonnegative().optional(),
  tokens: z.number().int().nonnegative().optional(),
});

export const allowDeny = z.union([
  z.array(z.string().min(1)),
  z.strictObject({ allow: z.array(z.string().min(1)).optional(), deny: z.array(z.string().min(1)).optional() }),
]);
