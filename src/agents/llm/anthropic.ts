import type Anthropic from '@anthropic-ai/sdk';
import type * as AnthropicSdk from '@anthropic-ai/sdk';
import { ANSWER_TOOL, usesAnswerTool } from './conversation.ts';
import { translateSdkError, type SdkErrorClasses } from './sdk-errors.ts';
import { ProviderError, type CallOptions, type ChatMessage, type ModelCall, type ModelReply, type ModelRequest, type ModelTarget, type ModelUsage, type ProviderCall } from './types.ts';

/**
 * Anthropic Messages through the official `@anthropic-ai/sdk`. Structured output goes
 * through an answer tool (`final_answer`, its input schema the output contract) with
 * `tool_choice: {type: 'any'}`: the model must either call a real tool or answer in
 * the contract's shape. The SDK's own retries are off; the failover chain retries.
 */

type Sdk = typeof AnthropicSdk;
type Params = Anthropic.Messages.MessageCreateParamsNonStreaming;
type Block = Anthropic.Messages.ContentBlockParam;

/** Anthropic requires `max_tokens`; this is used when the model's `maxTokens` is not set. */
export const DEFAULT_MAX_TOKENS = 4096;

let sdk: Promise<Sdk> | null = null;
const clients = new Map<string, Anthropic>();

async function client(target: ModelTarget): Promise<{ c: Anthropic; errors: SdkErrorClasses }> {
  const mod = await (sdk ??= import('@anthropic-ai/sdk'));
  const id = `${target.baseURL ?? ''}\n${target.apiKey}`;
  let c = clients.get(id);
  if (!c) {
    c = new mod.Anthropic({ apiKey: target.apiKey, ...(target.baseURL ? { baseURL: target.baseURL } : {}), maxRetries: 0, timeout: 24 * 3600_000, logLevel: 'off' });
    clients.set(id, c);
  }
  return { c, errors: mod as unknown as SdkErrorClasses };
}

function toolInput(args: string): Record<string, unknown> {
  try {
    const v = JSON.parse(args) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
    return v === null ? {} : { value: v };
  } catch {
    return {};
  }
}

/** Messages alternate user/assistant; tool results go first in the user message that follows the calls. */
function toMessages(messages: ChatMessage[]): Anthropic.Messages.MessageParam[] {
  const out: Array<{ role: 'user' | 'assistant'; content: Block[] }> = [];
  const push = (role: 'user' | 'assistant', blocks: Block[]) => {
    const last = out.at(-1);
    if (last && last.role === role) last.content.push(...blocks);
    else out.push({ role, content: blocks });
  };
  for (const m of messages) {
    if (m.role === 'user') push('user', [{ type: 'text', text: m.text === '' ? '(empty)' : m.text }]);
    else if (m.role === 'tool') push('user', [{ type: 'tool_result', tool_use_id: m.callId, content: m.content, ...(m.isError ? { is_error: true } : {}) }]);
    else {
      const blocks: Block[] = [];
      if (m.text !== '') blocks.push({ type: 'text', text: m.text });
      for (const c of m.calls) blocks.push({ type: 'tool_use', id: c.id, name: c.name, input: toolInput(c.arguments) });
      if (blocks.length > 0) push('assistant', blocks);
    }
  }
  // The conversation starts with the user.
  if (out[0]?.role !== 'user') out.unshift({ role: 'user', content: [{ type: 'text', text: '(conversation so far)' }] });
  return out;
}

/** The request body (exported for tests and docs). */
export function toAnthropicRequest(target: ModelTarget, req: ModelRequest): Params {
  const body: Params = { model: target.model, max_tokens: target.maxTokens ?? DEFAULT_MAX_TOKENS, system: req.system, messages: toMessages(req.messages) };
  const tools: Anthropic.Messages.Tool[] = req.tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.parameters as Anthropic.Messages.Tool.InputSchema }));
  if (usesAnswerTool('anthropic', req.output)) {
    tools.push({
      name: ANSWER_TOOL,
      description: 'Give your final answer. Calling this ends your task.',
      input_schema: req.output.schema as Anthropic.Messages.Tool.InputSchema,
    });
    body.tool_choice = { type: 'any' };
  }
  if (tools.length > 0) body.tools = tools;
  return body;
}

function stopOf(reason: string | null | undefined): ModelReply['stop'] {
  switch (reason) {
    case 'end_turn':
    case 'stop_sequence':
      return 'end';
    case 'tool_use':
      return 'tool';
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'refusal':
      return 'refusal';
    default:
      return 'other';
  }
}

interface RawUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

/** Cache writes and reads count as input tokens (priced at the input rate). */
function inputTokens(u: RawUsage): number {
  return (u.input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0);
}

function reply(text: string, calls: ModelCall[], stop: string | null | undefined, usage: ModelUsage | null, answerTool: boolean): ModelReply {
  const answer = answerTool ? calls.find((c) => c.name === ANSWER_TOOL) : undefined;
  const s = stopOf(stop);
  return {
    text,
    calls: answer ? calls.filter((c) => c !== answer) : calls,
    final: answer ? answer.arguments : null,
    stop: s,
    refusal: s === 'refusal' ? text || 'refused' : null,
    usage,
  };
}

export const callAnthropic: ProviderCall = async (target: ModelTarget, req: ModelRequest, opts: CallOptions): Promise<ModelReply> => {
  const { c, errors } = await client(target);
  const body = toAnthropicRequest(target, req);
  const answerTool = usesAnswerTool('anthropic', req.output);
  let usage: ModelUsage | null = null;
  try {
    if (!opts.stream) {
      const msg = await c.messages.create(body, { signal: opts.signal });
      let text = '';
      const calls: ModelCall[] = [];
      for (const b of msg.content ?? []) {
        if (b.type === 'text') text += b.text;
        else if (b.type === 'tool_use') calls.push({ id: b.id, name: b.name, arguments: JSON.stringify(b.input ?? {}) });
      }
      const u = msg.usage as RawUsage | undefined;
      return reply(text, calls, msg.stop_reason, u ? { inputTokens: inputTokens(u), outputTokens: u.output_tokens ?? 0 } : null, answerTool);
    }

    const stream = await c.messages.create({ ...body, stream: true }, { signal: opts.signal });
    let text = '';
    let stop: string | null = null;
    let done = false;
    const blocks = new Map<number, { kind: 'text' | 'tool'; id: string; name: string; json: string }>();
    for await (const ev of stream) {
      switch (ev.type) {
        case 'message_start': {
          const u = ev.message.usage as RawUsage;
          usage = { inputTokens: inputTokens(u), outputTokens: u.output_tokens ?? 0 };
          break;
        }
        case 'content_block_start':
          if (ev.content_block.type === 'tool_use') blocks.set(ev.index, { kind: 'tool', id: ev.content_block.id, name: ev.content_block.name, json: '' });
          else if (ev.content_block.type === 'text') {
            blocks.set(ev.index, { kind: 'text', id: '', name: '', json: '' });
            if (ev.content_block.text) {
              text += ev.content_block.text;
              opts.onToken?.(ev.content_block.text);
            }
          }
          break;
        case 'content_block_delta':
          if (ev.delta.type === 'text_delta') {
            text += ev.delta.text;
            opts.onToken?.(ev.delta.text);
          } else if (ev.delta.type === 'input_json_delta') {
            const b = blocks.get(ev.index);
            if (b) b.json += ev.delta.partial_json;
          }
          break;
        case 'message_delta': {
          stop = ev.delta.stop_reason ?? stop;
          const u = ev.usage as RawUsage | undefined;
          if (u && usage) {
            // message_delta carries cumulative counts.
            if (u.output_tokens !== null && u.output_tokens !== undefined) usage.outputTokens = u.output_tokens;
            if (u.input_tokens !== null && u.input_tokens !== undefined) usage.inputTokens = inputTokens(u);
          }
          break;
        }
        case 'message_stop':
          done = true;
          break;
        default:
          break;
      }
    }
    if (opts.signal.aborted) throw opts.signal.reason;
    if (!done) throw new ProviderError('stream-cut', 'the stream ended before message_stop', { usage });
    const calls = [...blocks.entries()]
      .sort(([a], [b]) => a - b)
      .filter(([, b]) => b.kind === 'tool')
      .map(([, b]) => ({ id: b.id, name: b.name, arguments: b.json.trim() === '' ? '{}' : b.json }));
    return reply(text, calls, stop, usage, answerTool);
  } catch (err) {
    throw translateSdkError(err, errors, opts.signal, usage);
  }
};
