import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Agent } from '../../core/agent.ts';
import type { AgentKindContext } from '../kind.ts';
import { LlmAgent } from './agent.ts';
import type { AgentCatalog, TokenChunk } from './types.ts';

/**
 * `kind: 'llm'` in spine.config.json5 (docs/llm-agents.md):
 *
 * ```json5
 * writer: {
 *   kind: 'llm',
 *   system: { file: './prompts/writer.md' },
 *   models: [
 *     { provider: 'openai', model: 'gpt-4o-mini', pricing: { inputPer1M: 0.15, outputPer1M: 0.6 } },
 *     { provider: 'anthropic', model: 'claude-haiku-4-5', apiKey: { env: 'ANTHROPIC_API_KEY' } },
 *   ],
 * }
 * ```
 */

import type { LlmAgentConfig } from './schema.ts';

export { llmAgentSchema, modelSchema, type LlmAgentConfig, type LlmModelConfig } from './schema.ts';


/**
 * What the LLM kind may get besides the common context. `catalog` is the proposed
 * `AgentKindContext.catalog` (docs/llm-agents.md, "What the engine gives the adapter").
 */
export type LlmKindContext = AgentKindContext & {
  catalog?: AgentCatalog | undefined;
  /** Called with every streamed text chunk (programmatic use and tests). */
  onToken?: ((chunk: TokenChunk, meta: { agent: string; runId: string; taskId: string }) => void) | undefined;
};

/**
 * Builds an LLM agent. Everything that can be checked without the environment is
 * checked here, naming the field. Environment references (`{env}`) are read when the
 * agent takes a turn: an unset API key of an agent that is never used does not stop
 * `spine send` to another agent (docs/llm-agents.md, "Keys and the environment").
 */
export function createLlmAgent(cfg: LlmAgentConfig, ctx: LlmKindContext): Agent | null {
  const before = ctx.issues.length;
  if (cfg.pinned && cfg.models.length !== 1) {
    ctx.issues.push({ path: `${ctx.path}.pinned`, message: `a pinned agent names exactly one model (found ${cfg.models.length}): pinning turns failover off` });
  }
  cfg.models.forEach((m, i) => {
    if (typeof m.baseURL === 'string' && !isHttpUrl(m.baseURL)) {
      ctx.issues.push({ path: `${ctx.path}.models.${i}.baseURL`, message: `not an http(s) URL: ${m.baseURL}` });
    }
    if (m.provider === 'anthropic' && m.temperature !== undefined) {
      ctx.issues.push({ path: `${ctx.path}.models.${i}.temperature`, message: 'not supported by the anthropic provider (the Messages API no longer takes a temperature)' });
    }
    if (typeof m.baseURL === 'object' && m.baseURL.default !== undefined && !isHttpUrl(m.baseURL.default)) {
      ctx.issues.push({ path: `${ctx.path}.models.${i}.baseURL.default`, message: `not an http(s) URL: ${m.baseURL.default}` });
    }
  });
  let system = '';
  if (typeof cfg.system === 'string') system = cfg.system;
  else if (cfg.system) {
    const file = isAbsolute(cfg.system.file) ? cfg.system.file : resolve(ctx.dir, cfg.system.file);
    try {
      system = readFileSync(file, 'utf8');
    } catch (err) {
      ctx.issues.push({ path: `${ctx.path}.system.file`, message: `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
  if (ctx.issues.length > before) return null;
  return new LlmAgent({
    name: ctx.name,
    path: ctx.path,
    config: cfg,
    system,
    catalog: ctx.catalog ?? null,
    agentNames: ctx.agentNames,
    ...(ctx.onToken ? { onToken: ctx.onToken } : {}),
  });
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}
