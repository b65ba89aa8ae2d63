import type { Agent } from '../../core/agent.ts';
import { resolveSecret } from '../http/config.ts';
import type { AgentKindContext } from '../kind.ts';
import { A2aAgent } from './a2a-agent.ts';
import type { A2aAgentConfig } from './schema.ts';

export { a2aAgentSchema, type A2aAgentConfig } from './schema.ts';

export function createA2aAgent(cfg: A2aAgentConfig, ctx: AgentKindContext): Agent | null {
  return new A2aAgent({
    name: ctx.name,
    url: cfg.url,
    headers: Object.fromEntries(Object.entries(cfg.headers ?? {}).map(([k, v]) => [k, resolveSecret(v, ctx.name, `${ctx.path}.headers.${k}`)])),
    ...(cfg.streaming === undefined ? {} : { streaming: cfg.streaming }),
    ...(cfg.pollMs === undefined ? {} : { pollMs: cfg.pollMs }),
    ...(cfg.allowedOrigins === undefined ? {} : { allowedOrigins: cfg.allowedOrigins }),
  });
}
