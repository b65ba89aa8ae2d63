import { z } from 'zod';
import { agentCommon } from '../../config/agent-common.ts';
import type { Agent } from '../agent.ts';
import type { AgentKindContext } from '../kind.ts';

/** `kind: 'a2a'` in spine.config.json5. */
export const a2aAgentSchema = z.strictObject({
  kind: z.literal('a2a'),
  ...agentCommon,
});

export type A2aAgentConfig = z.infer<typeof a2aAgentSchema>;

export function createA2aAgent(_cfg: A2aAgentConfig, ctx: AgentKindContext): Agent | null {
  ctx.issues.push({ path: `${ctx.path}.kind`, message: 'agent kind "a2a" is not available in this build' });
  return null;
}
