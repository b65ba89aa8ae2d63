import { z } from 'zod';
import { httpUrl, secretValue } from '../../config/fields.ts';
import { agentCommon } from '../config-common.ts';

/** `kind: 'http'` in spine.config.json5 (docs/http-agents.md). */
export const httpAgentSchema = z.strictObject({
  kind: z.literal('http'),
  /** Where each turn is POSTed. */
  url: httpUrl,
  /** HMAC-SHA256 key for X-Spine-Signature; without it requests are unsigned. */
  secret: secretValue.optional(),
  /** Extra headers sent with every turn (values may come from the environment). */
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/, 'a header name'), secretValue).optional(),
  /** Further attempts within a turn after a 5xx, 408, 429 or network error (default 2). */
  retries: z.number().int().min(0).max(10).optional(),
  /** First backoff between those attempts in ms (default 250; doubles, capped at 5 s). */
  retryDelayMs: z.number().int().min(0).max(60_000).optional(),
  ...agentCommon,
});

export type HttpAgentConfig = z.infer<typeof httpAgentSchema>;
