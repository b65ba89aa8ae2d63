import { SpineError } from '../../core/errors.ts';
import type { Action, Json, TurnInput, Usage } from '../../core/types.ts';
import { parseTurnResult } from '../../engine/turn-result.ts';
import type { Agent, AgentContext } from '../../core/agent.ts';
import { callAnthropic } from './anthropic.ts';
import type { LlmAgentConfig, LlmModelConfig } from './schema.ts';
import { buildRequest, offerTools, outputSpec, toTurnResult, type AgentInfo } from './conversation.ts';
import { runChain, sharedCooldowns, type ChainOutcome, type Cooldowns, type FailoverSettings, type SkipRecord } from './failover.ts';
import { callOpenAI } from './openai.ts';
import type { AgentCatalog, ModelRequest, ModelTarget, Provider, ProviderCall, TokenChunk } from './types.ts';

/**
 * An LLM agent (`kind: 'llm'`): one turn is one model call (plus its retries and
 * failovers). The model decides the actions; Spine's boundary decides whether they
 * happen. No LLM call lives in the engine (law 1): this adapter is dispatched to like
 * any other agent and answers the plain turn protocol.
 */

export const DEFAULTS = { maxRetries: 1, cooldownMs: 60_000, maxWaitMs: 10_000, retryBackoffMs: 500 } as const;

/** The SDK default endpoints: a missing OpenAI key is only fatal against OpenAI itself. */
const DEFAULT_KEY_ENV: Record<Provider, string> = { openai: 'OPENAI_API_KEY', anthropic: 'ANTHROPIC_API_KEY' };
const DEFAULT_URL_ENV: Record<Provider, string> = { openai: 'OPENAI_BASE_URL', anthropic: 'ANTHROPIC_BASE_URL' };

/** A local OpenAI-compatible server (Ollama, vLLM, LM Studio) needs no key; the SDK wants one anyway. */
export const PLACEHOLDER_KEY = 'unused';

/**
 * Whether the engine records a turn answer's `meta` (the proposed TurnResult.meta,
 * written into the `turn.answered` audit event). Until it does, a `meta` field would
 * make every answer a protocol violation, so it is left out.
 */
export const ENGINE_RECORDS_META: boolean = (() => {
  try {
    parseTurnResult('probe', { actions: [], meta: {} });
    return true;
  } catch {
    return false;
  }
})();

/** The turn context an LLM agent can use: the engine's, plus the proposed token hook. */
/** The engine's AgentContext: `onToken` receives streamed text (provider and model as strings). */
export type LlmTurnContext = AgentContext;

export interface LlmAgentOptions {
  name: string;
  /** Config path of the agent (`agents.writer`), for error messages. */
  path: string;
  config: LlmAgentConfig;
  /** The system prompt's text. */
  system: string;
  catalog?: AgentCatalog | null;
  agentNames?: readonly string[];
  cooldowns?: Cooldowns;
  /** Where `{env}` references are read (default process.env). */
  env?: Record<string, string | undefined>;
  /** Provider implementations (default: the official SDKs). */
  providers?: Partial<Record<Provider, ProviderCall>>;
  onToken?: (chunk: TokenChunk, meta: { agent: string; runId: string; taskId: string }) => void;
  now?: () => number;
}

export interface LlmTurnAnswer {
  actions?: Action[];
  output?: Json;
  usage?: Usage;
  meta?: { [key: string]: Json };
}

export class LlmAgent implements Agent {
  readonly kind = 'llm';
  private readonly opts: LlmAgentOptions;
  private readonly settings: FailoverSettings;
  private info: AgentInfo | null = null;

  constructor(opts: LlmAgentOptions) {
    this.opts = opts;
    const c = opts.config;
    this.settings = {
      pinned: c.pinned ?? false,
      maxWaitMs: c.maxWaitMs ?? DEFAULTS.maxWaitMs,
      cooldownMs: c.cooldownMs ?? DEFAULTS.cooldownMs,
      retryBackoffMs: c.retryBackoffMs ?? DEFAULTS.retryBackoffMs,
    };
  }

  /** Resolved on the first turn: the catalog is complete only once the whole config is compiled. */
  private agentInfo(): AgentInfo {
    const catalog = this.opts.catalog ?? null;
    return (this.info ??= {
      name: this.opts.name,
      system: this.opts.system,
      catalog,
      agentNames: this.opts.agentNames ?? [],
      output: outputSpec(this.opts.config.output ?? null, this.opts.config.structuredOutput, catalog),
    });
  }

  async turn(input: TurnInput, ctx: LlmTurnContext): Promise<LlmTurnAnswer> {
    const now = this.opts.now ?? Date.now;
    const info = this.agentInfo();
    const { targets, skipped } = this.resolveTargets();
    const offer = offerTools(input, info);
    const requests = new Map<Provider, ModelRequest>();
    const requestFor = (p: Provider) => requests.get(p) ?? requests.set(p, buildRequest(input, info, offer, p)).get(p)!;
    const where = { agent: this.opts.name, runId: input.task.runId, taskId: input.task.id };

    const outcome = await runChain(
      targets,
      skipped,
      this.settings,
      { agent: this.opts.name, signal: ctx.signal, deadline: now() + ctx.timeoutMs, now, cooldowns: this.opts.cooldowns ?? sharedCooldowns, breakers: ctx.breakers },
      (target, signal) => {
        const call = this.opts.providers?.[target.provider] ?? (target.provider === 'openai' ? callOpenAI : callAnthropic);
        const onToken =
          ctx.onToken || this.opts.onToken
            ? (text: string) => {
                const chunk: TokenChunk = { text, provider: target.provider, model: target.model };
                ctx.onToken?.(chunk);
                this.opts.onToken?.(chunk, where);
              }
            : undefined;
        return call(target, requestFor(target.provider), { signal, stream: this.opts.config.stream ?? false, onToken });
      },
    );
    const answer: LlmTurnAnswer = toTurnResult(outcome.reply, offer, info, input);
    const usage = priced(outcome);
    if (usage) answer.usage = usage;
    if (ENGINE_RECORDS_META) answer.meta = meta(outcome, this.opts.config.stream ?? false);
    return answer;
  }

  /**
   * The chain with every `{env}` reference read now. A model whose key or name is
   * missing is skipped (and reported); no usable model at all is a config error.
   */
  resolveTargets(): { targets: ModelTarget[]; skipped: SkipRecord[] } {
    const env = this.opts.env ?? process.env;
    const targets: ModelTarget[] = [];
    const skipped: SkipRecord[] = [];
    const problems: Array<{ path: string; message: string }> = [];
    const fromEnv = (name: string): string | undefined => {
      const v = env[name];
      return v === undefined || v === '' ? undefined : v;
    };
    this.opts.config.models.forEach((m: LlmModelConfig, index) => {
      const path = `${this.opts.path}.models.${index}`;
      const missing: Array<{ path: string; message: string }> = [];
      const read = (field: string, value: LlmModelConfig['model'] | undefined): string | undefined => {
        if (value === undefined || typeof value === 'string') return value;
        const v = fromEnv(value.env) ?? value.default;
        if (v === undefined) missing.push({ path: `${path}.${field}`, message: `environment variable ${value.env} is not set` });
        return v;
      };
      const model = read('model', m.model);
      const baseURL = read('baseURL', m.baseURL) ?? fromEnv(DEFAULT_URL_ENV[m.provider]);
      let apiKey = read('apiKey', m.apiKey);
      if (m.apiKey === undefined) {
        apiKey = fromEnv(DEFAULT_KEY_ENV[m.provider]);
        if (apiKey === undefined) {
          if (m.provider === 'openai' && baseURL !== undefined && !isOpenAI(baseURL)) apiKey = PLACEHOLDER_KEY;
          else missing.push({ path: `${path}.apiKey`, message: `environment variable ${DEFAULT_KEY_ENV[m.provider]} is not set` });
        }
      }
      const label = `${m.provider}:${model ?? '?'}`;
      if (missing.length > 0 || model === undefined || apiKey === undefined) {
        skipped.push({ model: label, reason: 'unconfigured', detail: missing.map((p) => `${p.path}: ${p.message}`).join('; ') });
        problems.push(...missing);
        return;
      }
      targets.push({
        index,
        provider: m.provider,
        model,
        label,
        key: `${m.provider}|${baseURL ?? 'default'}|${model}`,
        breaker: breakerKey(m.provider, model, baseURL),
        baseURL,
        apiKey,
        maxTokens: m.maxTokens,
        temperature: m.temperature,
        pricing: m.pricing ?? null,
        maxRetries: m.maxRetries ?? this.opts.config.maxRetries ?? DEFAULTS.maxRetries,
        requestTimeoutMs: m.requestTimeoutMs,
      });
    });
    const pinnedUnusable = this.settings.pinned && targets[0]?.index !== 0;
    if (targets.length === 0 || pinnedUnusable) {
      throw new SpineError('CONFIG_INVALID', `agent "${this.opts.name}" has no usable model: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, {
        retryable: false,
        details: problems,
      });
    }
    return { targets, skipped };
  }
}

/**
 * One breaker per model endpoint: provider and model, plus the host of a configured
 * base URL (two servers of one model are two endpoints). Only the host: a URL's path,
 * query or credentials never become a key that is stored and shown.
 */
export function breakerKey(provider: Provider, model: string, baseURL: string | undefined): string {
  let host = '';
  try {
    if (baseURL !== undefined) host = `@${new URL(baseURL).host}`;
  } catch {
    host = '@invalid';
  }
  return `model:${provider}:${model}${host}`;
}

function isOpenAI(url: string): boolean {
  try {
    return /(^|\.)openai\.com$/.test(new URL(url).hostname);
  } catch {
    return false;
  }
}

/** Tokens of every call of the turn; cost from each model's pricing (left out if a model used has none). */
function priced(outcome: ChainOutcome): Usage | null {
  if (outcome.spent.length === 0) return null;
  let inputTokens = 0;
  let outputTokens = 0;
  let costUsd: number | undefined = 0;
  for (const { target, usage } of outcome.spent) {
    inputTokens += usage.inputTokens;
    outputTokens += usage.outputTokens;
    if (costUsd !== undefined && target.pricing) costUsd += (usage.inputTokens * target.pricing.inputPer1M + usage.outputTokens * target.pricing.outputPer1M) / 1e6;
    else costUsd = undefined;
  }
  return { inputTokens, outputTokens, ...(costUsd === undefined ? {} : { costUsd }) };
}

/** What the audit records about how the answer was produced: the model, and any retry, failover or skip. */
function meta(outcome: ChainOutcome, streamed: boolean): { [key: string]: Json } {
  const m: { [key: string]: Json } = { provider: outcome.target.provider, model: outcome.target.label };
  if (streamed) m.streamed = true;
  if (outcome.attempts.length > 1) m.attempts = outcome.attempts as unknown as Json;
  if (outcome.failovers.length > 0) m.failovers = outcome.failovers as unknown as Json;
  if (outcome.skipped.length > 0) m.skipped = outcome.skipped as unknown as Json;
  return m;
}
