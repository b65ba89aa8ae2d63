import { z } from 'zod';
import { agentCommon } from '../config-common.ts';
import { httpUrl, secretValue, type SecretValue } from '../../config/fields.ts';
import { lazySecret } from '../../core/secrets.ts';
import { AgentError } from '../../core/errors.ts';
import type { Agent } from '../../core/agent.ts';
import type { AgentKindContext } from '../kind.ts';
import { HttpAgent } from './http-agent.ts';

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

export const DEFAULT_HTTP_RETRIES = 2;
export const DEFAULT_HTTP_RETRY_DELAY_MS = 250;

/** A secret for this agent, read when a turn needs it; an unset variable fails the turn without retries and names the field. */
export function resolveSecret(value: SecretValue, agent: string, field: string): () => string {
  return lazySecret(value, (variable) => new AgentError(agent, `${field}: environment variable ${variable} is not set`, { retryable: false }));
}

export function createHttpAgent(cfg: HttpAgentConfig, ctx: AgentKindContext): Agent | null {
  return new HttpAgent({
    name: ctx.name,
    url: cfg.url,
    secret: cfg.secret === undefined ? null : resolveSecret(cfg.secret, ctx.name, `${ctx.path}.secret`),
    headers: Object.fromEntries(Object.entries(cfg.headers ?? {}).map(([k, v]) => [k, resolveSecret(v, ctx.name, `${ctx.path}.headers.${k}`)])),
    retries: cfg.retries ?? DEFAULT_HTTP_RETRIES,
    retryDelayMs: cfg.retryDelayMs ?? DEFAULT_HTTP_RETRY_DELAY_MS,
  });
}
