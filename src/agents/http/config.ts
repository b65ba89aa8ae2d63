import type { SecretValue } from '../../config/fields.ts';
import { lazySecret } from '../../core/secrets.ts';
import { AgentError } from '../../core/errors.ts';
import type { Agent } from '../../core/agent.ts';
import type { AgentKindContext } from '../kind.ts';
import { HttpAgent } from './http-agent.ts';
import type { HttpAgentConfig } from './schema.ts';

export { httpAgentSchema, type HttpAgentConfig } from './schema.ts';

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
