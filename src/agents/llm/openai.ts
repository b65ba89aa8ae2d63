import type OpenAI from 'openai';
import type * as OpenAISdk from 'openai';
import { translateSdkError, type SdkErrorClasses } from './sdk-errors.ts';
import { ProviderError, type CallOptions, type JsonSchema, type ModelCall, type ModelReply, type ModelRequest, type ModelTarget, type ModelUsage, type ProviderCall } from './types.ts';

/**
 * OpenAI-compatible chat completions through the official `openai` SDK: OpenAI itself,
 * and through `baseURL` Ollama, vLLM, LM Studio, OpenRouter and the like. The SDK's own
 * retries are off (`maxRetries: 0`): retries, retry-after and failover are the chain's
 * (failover.ts), so that each one is counted, bounded by the turn and audited.
 */

type Sdk = typeof OpenAISdk;
type Params = OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;

let sdk: Promise<Sdk> | null = null;
const clients = new Map<string, OpenAI>();

/** The SDK is loaded on first use: configs without LLM agents never pay for it. */
async function client(target: ModelTarget): Promise<{ c: OpenAI; errors: SdkErrorClasses }> {
  const mod = await (sdk ??= import('openai'));
  const id = `${target.baseURL ?? ''}\n${target.apiKey}`;
  let c = clients.get(id);
  if (!c) {
    c = new mod.OpenAI({ apiKey: target.apiKey, ...(target.baseURL ? { baseURL: target.baseURL } : {}), maxRetries: 0, timeout: 24 * 3600_000, logLevel: 'off' });
    clients.set(id, c);
  }
  return { c, errors: mod as unknown as SdkErrorClasses };
}

const OPENAI_HOST = /(^|\.)openai\.com$/;

/** The request body (exported for tests and docs). */
export function toOpenAIRequest(target: ModelTarget, req: ModelRequest): Params {
  const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'system', content: req.system }];
  for (const m of req.messages) {
    if (m.role === 'user') messages.push({ role: 'user', content: m.text });
    else if (m.role === 'tool') messages.push({ role: 'tool', tool_call_id: m.callId, content: m.content });
    else {
      messages.push({
        role: 'assistant',
        content: m.text === '' ? null : m.text,
        ...(m.calls.length > 0 ? { tool_calls: m.calls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } })) } : {}),
      });
    }
  }
  const body: Params = { model: target.model, messages };
  if (req.tools.length > 0) {
    body.tools = req.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }));
    body.tool_choice = 'auto';
  }
  const out = req.output;
  if (out.json && out.structured) {
    body.response_format = out.schema
      ? { type: 'json_schema', json_schema: { name: out.name, schema: out.schema, strict: strictCompatible(out.schema) } }
      : { type: 'json_object' };
  }
  if (target.temperature !== undefined) body.temperature = target.temperature;
  if (target.maxTokens !== undefined) {
    // OpenAI's newer models accept only max_completion_tokens; compatible servers know max_tokens.
    if (isOpenAIHost(target.baseURL)) body.max_completion_tokens = target.maxTokens;
    else body.max_tokens = target.maxTokens;
  }
  return body;
}

function isOpenAIHost(baseURL: string | undefined): boolean {
  if (!baseURL) return true;
  try {
    return OPENAI_HOST.test(new URL(baseURL).hostname);
  } catch {
    return false;
  }
}

/** Keywords OpenAI's strict mode is known to take; a schema using any other is sent with `strict: false`. */
const STRICT_KEYWORDS = new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'const', 'anyOf', '$ref', '$defs', 'definitions', 'description', 'title']);

/**
 * OpenAI's strict mode takes only schemas where every object lists all its properties
 * as required and forbids others, with a limited set of keywords; anything else is
 * sent with `strict: false` (the schema still guides the model, and the boundary
 * checks the contract either way).
 */
export function strictCompatible(schema: unknown): boolean {
  if (Array.isArray(schema)) return schema.every(strictCompatible);
  if (typeof schema !== 'object' || schema === null) return true;
  const s = schema as JsonSchema;
  if (!Object.keys(s).every((k) => STRICT_KEYWORDS.has(k))) return false;
  if (s.type === 'object' || s.properties !== undefined) {
    const props = typeof s.properties === 'object' && s.properties !== null && !Array.isArray(s.properties) ? Object.keys(s.properties) : [];
    const required = Array.isArray(s.required) ? s.required : [];
    if (s.additionalProperties !== false || !props.every((p) => required.includes(p))) return false;
  }
  const nested = (v: unknown) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.values(v).every(strictCompatible) : true);
  return (
    nested(s.properties) &&
    nested(s.$defs) &&
    nested(s.definitions) &&
    strictCompatible(s.items ?? null) &&
    strictCompatible(s.anyOf ?? null)
  );
}

function stopOf(reason: string | null | undefined): ModelReply['stop'] {
  switch (reason) {
    case 'stop':
      return 'end';
    case 'tool_calls':
    case 'function_call':
      return 'tool';
    case 'length':
      return 'length';
    case 'content_filter':
      return 'refusal';
    default:
      return 'other';
  }
}

function usageOf(u: OpenAI.CompletionUsage | null | undefined): ModelUsage | null {
  if (!u) return null;
  return { inputTokens: u.prompt_tokens ?? 0, outputTokens: u.completion_tokens ?? 0 };
}

export const callOpenAI: ProviderCall = async (target: ModelTarget, req: ModelRequest, opts: CallOptions): Promise<ModelReply> => {
  const { c, errors } = await client(target);
  const body = toOpenAIRequest(target, req);
  let partial: ModelUsage | null = null;
  try {
    if (!opts.stream) {
      const res = await c.chat.completions.create(body, { signal: opts.signal });
      const choice = res.choices?.[0];
      if (!choice) throw new ProviderError('malformed-response', 'the answer has no choices', { usage: usageOf(res.usage) });
      const msg = choice.message;
      const calls: ModelCall[] = [];
      for (const tc of msg.tool_calls ?? []) if (tc.type === 'function') calls.push({ id: tc.id, name: tc.function.name, arguments: tc.function.arguments });
      return { text: msg.content ?? '', calls, final: null, stop: stopOf(choice.finish_reason), refusal: msg.refusal ?? null, usage: usageOf(res.usage) };
    }

    const stream = await c.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } }, { signal: opts.signal });
    let text = '';
    let refusal = '';
    let finish: string | null = null;
    const slots: Array<{ id: string; name: string; arguments: string }> = [];
    for await (const chunk of stream) {
      if (chunk.usage) partial = usageOf(chunk.usage);
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      const d = choice.delta;
      if (d?.content) {
        text += d.content;
        opts.onToken?.(d.content);
      }
      if (d?.refusal) refusal += d.refusal;
      for (const tc of d?.tool_calls ?? []) {
        // Some compatible servers leave out `index` and send each call whole.
        const at = typeof tc.index === 'number' ? tc.index : tc.id ? slots.length : Math.max(0, slots.length - 1);
        const slot = (slots[at] ??= { id: '', name: '', arguments: '' });
        if (tc.id) slot.id = tc.id;
        if (tc.function?.name) slot.name += tc.function.name;
        if (tc.function?.arguments) slot.arguments += tc.function.arguments;
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    // The SDK ends an aborted stream quietly; a stream that ends without a finish reason was cut off.
    if (opts.signal.aborted) throw opts.signal.reason;
    if (finish === null) throw new ProviderError('stream-cut', 'the stream ended before the answer was complete', { usage: partial });
    const calls = slots.filter(Boolean).map((s, i) => ({ id: s.id || `call_${i}`, name: s.name, arguments: s.arguments }));
    return { text, calls, final: null, stop: stopOf(finish), refusal: refusal === '' ? null : refusal, usage: partial };
  } catch (err) {
    throw translateSdkError(err, errors, opts.signal, partial);
  }
};
