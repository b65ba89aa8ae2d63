import { z } from 'zod';
import { agentCommon } from '../config-common.ts';

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
