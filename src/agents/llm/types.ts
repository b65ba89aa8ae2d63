import type { Json } from '../../core/types.ts';

/**
 * Provider-neutral shapes of one model call. The conversation builder speaks these;
 * each provider module (openai.ts, anthropic.ts) translates them to and from its
 * SDK's wire format, so the failover chain can switch providers within a turn.
 */

export type Provider = 'openai' | 'anthropic';

/** A JSON Schema whose root is an object (what providers accept as tool parameters). */
export type JsonSchema = { [key: string]: Json };

/** A tool as offered to the model. `name` is the wire name (`[A-Za-z0-9_-]{1,64}`). */
export interface OfferedTool {
  name: string;
  description: string;
  parameters: JsonSchema;
}

/** One tool call, in the model's reply or replayed from history. `arguments` is JSON text. */
export interface ModelCall {
  id: string;
  name: string;
  arguments: string;
}

export type ChatMessage =
  | { role: 'user'; text: string }
  | { role: 'assistant'; text: string; calls: ModelCall[] }
  | { role: 'tool'; callId: string; name: string; content: string; isError: boolean };

/** What the final answer must look like. */
export interface OutputSpec {
  /** The final answer must be JSON (structured output, or an output contract). */
  json: boolean;
  /** Ask the provider for structured output (OpenAI `json_schema`/`json_object`, Anthropic's answer tool). */
  structured: boolean;
  /** The output contract's JSON Schema, as sent (wrapped when its root is not an object); null when unknown. */
  schema: JsonSchema | null;
  /** The contract's schema was wrapped as `{value: …}`: unwrap the answer. */
  wrapped: boolean;
  /** A name for the schema (`[A-Za-z0-9_-]`). */
  name: string;
  /** The contract's own schema, for the prompt. */
  contractSchema: Json | null;
}

export interface ModelRequest {
  system: string;
  messages: ChatMessage[];
  tools: OfferedTool[];
  output: OutputSpec;
}

export interface ModelUsage {
  inputTokens: number;
  outputTokens: number;
}

export interface ModelReply {
  text: string;
  calls: ModelCall[];
  /** The structured final answer given through Anthropic's answer tool (JSON text), or null. */
  final: string | null;
  stop: 'end' | 'tool' | 'length' | 'refusal' | 'other';
  refusal: string | null;
  /** Null when the provider reported no usage (then the turn settles at its cost estimate). */
  usage: ModelUsage | null;
}

/** A streamed piece of the model's text. */
export interface TokenChunk {
  text: string;
  provider: Provider;
  model: string;
}

export interface Pricing {
  inputPer1M: number;
  outputPer1M: number;
}

/** One model of the chain with its settings resolved (env references read), ready to call. */
export interface ModelTarget {
  /** Position in the configured `models` list. */
  index: number;
  provider: Provider;
  model: string;
  /** `provider:model`, for messages and the audit. */
  label: string;
  /** Identity for cooldowns: provider, endpoint and model. */
  key: string;
  /** Its circuit breaker: `model:<provider>:<model>`, with `@<host[:port]>` for a configured base URL (no path, no credentials). */
  breaker: string;
  baseURL: string | undefined;
  apiKey: string;
  maxTokens: number | undefined;
  temperature: number | undefined;
  pricing: Pricing | null;
  /** Retries on this model (after the first call) before failing over. */
  maxRetries: number;
  /** Per-call timeout; the turn's own deadline applies anyway. */
  requestTimeoutMs: number | undefined;
}

export interface CallOptions {
  signal: AbortSignal;
  stream: boolean;
  onToken?: ((text: string) => void) | undefined;
}

/** Calls one model once. Throws ProviderError for provider failures (anything else is a bug or an abort). */
export type ProviderCall = (target: ModelTarget, request: ModelRequest, opts: CallOptions) => Promise<ModelReply>;

/** Why a call failed in a way that a retry or another model may fix. */
export type FailureReason = 'rate-limited' | 'overloaded' | 'server-error' | 'timeout' | 'connection' | 'malformed-response' | 'stream-cut';

/**
 * A provider call that failed. `transient` failures (429, 5xx, 529/overloaded, timeouts,
 * dropped connections, unreadable or cut-off answers) are retried and fail over;
 * others (400, 401, 403, 404, 422 …) are the request's or the config's fault and do not.
 */
export class ProviderError extends Error {
  readonly reason: FailureReason | 'rejected';
  readonly transient: boolean;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  /** Tokens spent before the failure (a stream cut mid-way), when known. */
  readonly usage: ModelUsage | null;

  constructor(
    reason: FailureReason | 'rejected',
    message: string,
    opts: { status?: number | undefined; retryAfterMs?: number | undefined; usage?: ModelUsage | null; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ProviderError';
    this.reason = reason;
    this.transient = reason !== 'rejected';
    this.status = opts.status;
    this.retryAfterMs = opts.retryAfterMs;
    this.usage = opts.usage ?? null;
  }
}

/** What the adapter can learn about the rest of the config (contract schemas, tools, agents). */
export type { AgentCatalog } from '../kind.ts';
