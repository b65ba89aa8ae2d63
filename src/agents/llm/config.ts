import { z } from 'zod';
import { agentCommon } from '../../config/agent-common.ts';
import type { Agent } from '../agent.ts';
import type { AgentKindContext } from '../kind.ts';

/** `kind: 'llm'` in spine.config.json5. */
export const llmAgentSchema = z.strictObject({
  kind: z.literal('llm'),
  ...agentCommon,
});

export type LlmAgentConfig = z.infer<typeof llmAgentSchema>;

export function createLlmAgent(_cfg: LlmAgentConfig, ctx: AgentKindContext): Agent | null {
  ctx.issues.push({ path: `${ctx.path}.kind`, message: 'agent kind "llm" is not available in this build' });
  return null;
}
