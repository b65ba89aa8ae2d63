import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { agentCommon } from '../../config/agent-common.ts';
import type { Agent } from '../agent.ts';
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

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A setting given literally, or read from the environment when the agent is used. */
const envRef = z.strictObject({
  env: z.string().regex(ENV_NAME, 'an environment variable name, e.g. OPENAI_API_KEY'),
  /** Used when the variable is unset. */
  default: z.string().min(1).optional(),
});
const setting = z.union([z.string().min(1), envRef], {
  error: (issue) => (issue.input === undefined ? 'required' : 'a non-empty string, or {env: "NAME"} to read it from the environment'),
});

const nonNegative = z.number().nonnegative();

export const modelSchema = z.strictObject({
  provider: z.enum(['openai', 'anthropic']),
  model: setting,
  /** OpenAI-compatible servers (Ollama, vLLM, LM Studio, OpenRouter) or a proxy. Default: the SDK's (OPENAI_BASE_URL / ANTHROPIC_BASE_URL, else the vendor's). */
  baseURL: setting.optional(),
  /** Default: {env: 'OPENAI_API_KEY'} / {env: 'ANTHROPIC_API_KEY'}. */
  apiKey: setting.optional(),
  maxTokens: z.number().int().positive().optional(),
  /** OpenAI-compatible providers only. */
  temperature: z.number().min(0).max(2).optional(),
  /** USD per million tokens; the turn's `usage.costUsd` is computed from it. */
  pricing: z.strictObject({ inputPer1M: nonNegative, outputPer1M: nonNegative }).optional(),
  /** Retries on this model before failing over (default: the agent's `maxRetries`). */
  maxRetries: z.number().int().min(0).max(10).optional(),
  /** A call that takes longer counts as a timeout (and fails over). The agent's `timeoutMs` bounds the whole turn. */
  requestTimeoutMs: z.number().int().positive().optional(),
});

export const llmAgentSchema = z.strictObject({
  kind: z.literal('llm'),
  ...agentCommon,
  /** The fallback chain, tried in order. */
  models: z.array(modelSchema).min(1, 'at least one model is required'),
  /** The system prompt, or `{file}` (relative to the config file). */
  system: z.union([z.string(), z.strictObject({ file: z.string().min(1) })], { error: 'a string, or {file: "path"}' }).optional(),
  /** Never swap the model: failover off, failures go to the retry policy. Needs exactly one model. */
  pinned: z.boolean().optional(),
  /** Ask for structured output (JSON Schema of the `output` contract). Default: on when the agent has an `output` contract. */
  structuredOutput: z.boolean().optional(),
  /** Use the providers' streaming APIs (streamed text goes to the token hook). Default false. */
  stream: z.boolean().optional(),
  /** Retries on the same model before failing over (default 1). */
  maxRetries: z.number().int().min(0).max(10).optional(),
  /** How long a failed model is skipped (default 60 000 ms; longer if its retry-after says so). */
  cooldownMs: z.number().int().nonnegative().optional(),
  /** The longest retry-after or backoff waited for on the same model before failing over instead (default 10 000 ms). */
  maxWaitMs: z.number().int().nonnegative().optional(),
  /** Backoff before a retry on the same model when the provider gave no retry-after (default 500 ms, doubling). */
  retryBackoffMs: z.number().int().nonnegative().optional(),
});

export type LlmAgentConfig = z.infer<typeof llmAgentSchema>;
export type LlmModelConfig = z.infer<typeof modelSchema>;

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
