import { AgentProtocolError, type FieldIssue } from '../../core/errors.ts';
import type { Action, ActionResult, ErrorInfo, Json, TurnInput } from '../../core/types.ts';
import type { AgentCatalog, ChatMessage, JsonSchema, ModelReply, ModelRequest, OfferedTool, OutputSpec, Provider } from './types.ts';

/**
 * One turn as a model conversation, and the model's reply as a turn answer.
 *
 * The agent is stateless (law 3): every call is rebuilt from the turn input — the
 * session's earlier messages, the task's input, every earlier turn's tool calls with
 * their results, and why the previous attempt failed. Tool calls become `tool`
 * actions; calls to `handoff_to_<agent>` become `handoff` actions; a reply without
 * calls is the final output.
 */

/** Anthropic's structured answer goes through this tool (forced with `tool_choice: any`). */
export const ANSWER_TOOL = 'final_answer';
export const HANDOFF_PREFIX = 'handoff_to_';

type Target = { kind: 'tool'; tool: string; wrapped: boolean } | { kind: 'handoff'; agent: string } | { kind: 'memory'; action: 'remember' | 'recall' } | { kind: 'call' };

/** Shared memory's two actions, offered as tools to an agent holding memory grants (docs/memory.md). */
export const MEMORY_TOOLS = { remember: 'remember', recall: 'recall' } as const;

/** The direct call over a declared mesh path (docs/mesh.md), offered when the agent has any. */
export const CALL_AGENT_TOOL = 'call_agent';

/** The tools offered in one turn, with the way back from wire names to Spine names. */
export interface Offer {
  tools: OfferedTool[];
  targets: Map<string, Target>;
  /** `tool:<name>` / `handoff:<agent>` → wire name. */
  wireOf: Map<string, string>;
}

/** What the conversation needs to know about the agent. */
export interface AgentInfo {
  name: string;
  system: string;
  catalog: AgentCatalog | null;
  agentNames: readonly string[];
  output: OutputSpec;
}

const GENERIC_PARAMETERS: JsonSchema = { type: 'object', additionalProperties: true };

/** A provider-safe name: characters outside `[A-Za-z0-9_-]` become `_`, at most 64 characters. */
export function sanitizeName(name: string): string {
  const clean = name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
  return clean === '' ? 'tool' : clean;
}

function uniqueWire(name: string, used: Set<string>): string {
  let wire = sanitizeName(name);
  for (let n = 2; used.has(wire); n++) wire = `${sanitizeName(name).slice(0, 60)}_${n}`;
  used.add(wire);
  return wire;
}

function isObject(v: Json | undefined): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A schema as tool parameters: an object root as it is (minus `$schema`/`$id`), anything else wrapped in `{value}`. */
export function toParameters(schema: Json | undefined | null): { parameters: JsonSchema; wrapped: boolean } {
  if (!isObject(schema)) return { parameters: GENERIC_PARAMETERS, wrapped: false };
  const { $schema: _s, $id: _i, ...rest } = schema;
  const objectRoot = rest.type === 'object' || (rest.type === undefined && isObject(rest.properties));
  if (objectRoot) return { parameters: rest.type === undefined ? { type: 'object', ...rest } : rest, wrapped: false };
  return { parameters: { type: 'object', properties: { value: rest }, required: ['value'], additionalProperties: false }, wrapped: true };
}

/** How the final answer is asked for, from the agent's output contract and `structuredOutput`. */
export function outputSpec(contract: string | null, structuredOutput: boolean | undefined, catalog: AgentCatalog | null): OutputSpec {
  const structured = structuredOutput ?? contract !== null;
  const contractSchema = contract !== null && catalog ? (catalog.contractSchema(contract) ?? null) : null;
  const usable = isObject(contractSchema) ? toParameters(contractSchema) : null;
  return {
    json: structured || contract !== null,
    structured,
    schema: usable?.parameters ?? null,
    wrapped: usable?.wrapped ?? false,
    name: contract === null ? 'answer' : sanitizeName(contract.replace('@', '_v')),
    contractSchema,
  };
}

/** The tools and handoffs the agent holds grants for, as the model sees them. */
export function offerTools(input: TurnInput, info: AgentInfo): Offer {
  const offer: Offer = { tools: [], targets: new Map(), wireOf: new Map() };
  const used = new Set<string>([ANSWER_TOOL]);
  for (const tool of input.grants.tools) {
    const spec = info.catalog?.tool(tool);
    const { parameters, wrapped } = toParameters(spec?.input ? info.catalog?.contractSchema(spec.input) : undefined);
    const wire = uniqueWire(tool, used);
    const about = spec?.description ?? `The tool "${tool}".`;
    offer.tools.push({ name: wire, description: wire === tool ? about : `${about} (Spine tool "${tool}")`, parameters });
    offer.targets.set(wire, { kind: 'tool', tool, wrapped });
    offer.wireOf.set(`tool:${tool}`, wire);
  }
  for (const agent of input.grants.agents) {
    // An agent is not offered a handoff to itself: that is a loop, not a delegation.
    if (agent === info.name) continue;
    const spec = info.catalog?.agent(agent);
    const schema = spec?.input ? info.catalog?.contractSchema(spec.input) : undefined;
    const { parameters } = toParameters(isObject(schema) ? schema : undefined);
    const wire = uniqueWire(`${HANDOFF_PREFIX}${agent}`, used);
    offer.tools.push({
      name: wire,
      description:
        `Delegate work to the agent "${agent}"${spec?.description ? ` (${spec.description})` : ''}. ` +
        `The arguments are its input; its answer comes back as this call's result once it has finished. Several delegations in one reply run in parallel.`,
      parameters,
    });
    offer.targets.set(wire, { kind: 'handoff', agent });
    offer.wireOf.set(`handoff:${agent}`, wire);
  }
  const memory = input.grants.memory;
  if (memory && memory.write.length > 0 && !used.has(MEMORY_TOOLS.remember)) {
    used.add(MEMORY_TOOLS.remember);
    offer.tools.push({
      name: MEMORY_TOOLS.remember,
      description: `Write a fact to the team's shared memory so later runs and other agents can use it. You may write to: ${memory.write.join(', ')}. Cite what it was derived from in "sources" (fact ids).`,
      parameters: {
        type: 'object',
        required: ['scope', 'key', 'value'],
        properties: {
          scope: { type: 'string' },
          key: { type: 'string' },
          value: {},
          text: { type: 'string', description: 'searchable text' },
          expectedVersion: { type: 'integer', description: 'the version you read (compare-and-set)' },
          sources: { type: 'array', items: { type: 'string' } },
        },
        additionalProperties: false,
      },
    });
    offer.targets.set(MEMORY_TOOLS.remember, { kind: 'memory', action: 'remember' });
  }
  if (memory && memory.read.length > 0 && !used.has(MEMORY_TOOLS.recall)) {
    used.add(MEMORY_TOOLS.recall);
    offer.tools.push({
      name: MEMORY_TOOLS.recall,
      description: `Search the shared memory by words (or read one fact by scope and key). You may read: ${memory.read.join(', ')}.`,
      parameters: {
        type: 'object',
        properties: { query: { type: 'string' }, scope: { type: 'string' }, key: { type: 'string' }, k: { type: 'integer' } },
        additionalProperties: false,
      },
    });
    offer.targets.set(MEMORY_TOOLS.recall, { kind: 'memory', action: 'recall' });
  }
  const mesh = input.grants.mesh ?? [];
  if (mesh.length > 0 && !used.has(CALL_AGENT_TOOL)) {
    used.add(CALL_AGENT_TOOL);
    offer.tools.push({
      name: CALL_AGENT_TOOL,
      description:
        `Ask another agent directly and get its answer as this call's result, without a delegation: fast, but it can only answer (no tools of its own). ` +
        `You may call: ${mesh.map((a) => { const d = info.catalog?.agent(a)?.description; return d ? `${a} (${d})` : a; }).join(', ')}.`,
      parameters: { type: 'object', required: ['agent'], properties: { agent: { type: 'string', enum: mesh }, input: { description: "the agent's input" } }, additionalProperties: false },
    });
    offer.targets.set(CALL_AGENT_TOOL, { kind: 'call' });
  }
  return offer;
}

/** Whether this provider gives its structured answer through the answer tool. */
export function usesAnswerTool(provider: Provider, output: OutputSpec): boolean {
  return provider === 'anthropic' && output.structured && output.schema !== null;
}

function systemPrompt(info: AgentInfo, offer: Offer, provider: Provider): string {
  const lines = [`You are the agent "${info.name}", run by Spine, an orchestrator. Each reply of yours is one step of your task:`];
  if ([...offer.targets.values()].some((t) => t.kind === 'tool')) lines.push('- Call a tool to act; its result comes back in the next message.');
  if ([...offer.targets.values()].some((t) => t.kind === 'handoff')) {
    lines.push(`- Call ${HANDOFF_PREFIX}<agent> to delegate part of the work to that agent; its answer comes back as that call's result. Calls in one reply run in parallel.`);
  }
  if ([...offer.targets.values()].some((t) => t.kind === 'call')) {
    lines.push(`- Call ${CALL_AGENT_TOOL} to ask one of the agents it lists directly; its answer comes back as that call's result.`);
  }
  if ([...offer.targets.values()].some((t) => t.kind === 'memory')) {
    lines.push('- Call remember to write what you found to the shared memory (other agents and later runs learn from it), recall to search it.');
  }
  if (usesAnswerTool(provider, info.output)) {
    lines.push(`- When you have everything you need, call ${ANSWER_TOOL} with your final answer. That ends your task; do not combine it with a delegation.`);
  } else {
    lines.push('- When you have everything you need, reply without any tool call: that reply is your final answer and ends your task.');
    if (info.output.json) {
      lines.push(
        'Your final answer must be one JSON value and nothing else: no prose, no code fences.' +
          (info.output.contractSchema !== null ? ` It must match this JSON Schema: ${JSON.stringify(info.output.contractSchema)}` : ''),
      );
    }
  }
  const own = info.system.trim();
  return own === '' ? lines.join('\n') : `${own}\n\n${lines.join('\n')}`;
}

/** Renders a JSON value for the model: strings as they are, `{text}` as its text, the rest as JSON. */
export function renderValue(value: Json | undefined): string {
  if (value === undefined || value === null) return '(none)';
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.text === 'string' && Object.keys(value).length === 1) return value.text;
  return JSON.stringify(value, null, 2);
}

function resultText(r: ActionResult | undefined): { content: string; isError: boolean } {
  if (!r) return { content: JSON.stringify({ error: { code: 'NO_RESULT', message: 'no result was recorded for this call' } }), isError: true };
  if (r.ok) return { content: typeof r.value === 'string' ? r.value : JSON.stringify(r.value), isError: false };
  const { code, message, details } = r.error;
  return { content: JSON.stringify({ error: { code, message, ...(details === undefined ? {} : { details }) } }), isError: true };
}

function asArguments(value: Json | undefined, wrapped: boolean): Json {
  if (wrapped) return { value: value ?? null };
  if (value === undefined || value === null) return {};
  return isObject(value) ? value : { value };
}

/** A call id that is the same in every rebuild of the conversation. */
export function callId(turn: number, index: number): string {
  return `call_${turn}_${index}`;
}

function retryNote(err: ErrorInfo): string {
  const lines = [`Your previous reply could not be used (${err.code}): ${err.message}`];
  const details = err.details as { violations?: FieldIssue[] } | FieldIssue[] | undefined | null;
  const problems = Array.isArray(details) ? details : Array.isArray(details?.violations) ? details.violations : [];
  for (const p of problems) lines.push(`- ${p.path || '(root)'}: ${p.message}`);
  lines.push('Reply again and fix this.');
  return lines.join('\n');
}

/** The whole model request for one turn. */
export function buildRequest(input: TurnInput, info: AgentInfo, offer: Offer, provider: Provider): ModelRequest {
  const messages: ChatMessage[] = [];
  for (const m of input.session?.history ?? []) {
    if (m.runId === input.task.runId) continue;
    if (m.role === 'user') messages.push({ role: 'user', text: m.text ?? renderValue(m.input) });
    else messages.push({ role: 'assistant', text: renderValue(m.output), calls: [] });
  }
  messages.push({ role: 'user', text: renderValue(input.task.input) });
  // Facts recalled from shared memory for this turn, with their ids so the model can cite them.
  if (input.memory.length > 0) messages.push({ role: 'user', text: `Facts from shared memory (cite their ids as sources):\n${JSON.stringify(input.memory, null, 1)}` });
  for (const rec of input.history) {
    if (rec.actions.length === 0) continue;
    const calls = rec.actions.map((a: Action, i) => {
      let name: string;
      let args: Json;
      if (a.type === 'tool') {
        name = offer.wireOf.get(`tool:${a.tool}`) ?? sanitizeName(a.tool);
        const target = offer.targets.get(name);
        args = asArguments(a.input, target?.kind === 'tool' && target.wrapped);
      } else if (a.type === 'handoff') {
        name = offer.wireOf.get(`handoff:${a.agent}`) ?? `${HANDOFF_PREFIX}${a.agent}`;
        args = asArguments(a.input, false);
      } else if (a.type === 'deliver') {
        name = 'deliver';
        args = { channel: a.channel, to: a.to, text: a.text };
      } else {
        // Memory actions are replayed under their own names.
        const { type, id: _id, ...rest } = a;
        name = type;
        args = rest;
      }
      return { id: callId(rec.turn, i), name, arguments: JSON.stringify(args) };
    });
    messages.push({ role: 'assistant', text: '', calls });
    rec.actions.forEach((_, i) => {
      const r = resultText(rec.results.find((x) => x.index === i));
      messages.push({ role: 'tool', callId: callId(rec.turn, i), name: calls[i]!.name, ...r });
    });
  }
  if (input.task.lastError) messages.push({ role: 'user', text: retryNote(input.task.lastError) });
  return { system: systemPrompt(info, offer, provider), messages, tools: offer.tools, output: info.output };
}

function resolveCall(name: string, offer: Offer, info: AgentInfo): Target | null {
  const offered = offer.targets.get(name);
  if (offered) return offered;
  if (name.startsWith(HANDOFF_PREFIX)) {
    const agent = name.slice(HANDOFF_PREFIX.length);
    // A configured agent it holds no grant for: the boundary refuses it and tells the model.
    return info.agentNames.includes(agent) ? { kind: 'handoff', agent } : null;
  }
  if (!info.catalog) {
    // Without the catalog an unknown name cannot be told from an ungranted tool: the boundary decides (UNKNOWN_TOOL or POLICY_DENIED).
    return { kind: 'tool', tool: name, wrapped: false };
  }
  for (const tool of info.catalog.toolNames()) {
    if (tool === name || sanitizeName(tool) === name) {
      const spec = info.catalog.tool(tool);
      return { kind: 'tool', tool, wrapped: toParameters(spec?.input ? info.catalog.contractSchema(spec.input) : undefined).wrapped };
    }
  }
  return null;
}

function stripFences(text: string): string {
  const m = /^```[A-Za-z0-9_-]*\s*\n([\s\S]*?)\n?```$/.exec(text);
  return m ? m[1]!.trim() : text;
}

function preview(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function unwrap(value: Json, output: OutputSpec): Json {
  if (output.wrapped && isObject(value) && Object.keys(value).length === 1 && 'value' in value) return value.value!;
  return value;
}

/**
 * The model's reply as a turn answer: tool calls → actions; no calls → output. A
 * reply that cannot be used (an unknown tool, arguments that are not JSON, prose
 * where JSON was required, an empty answer) throws AgentProtocolError listing every
 * problem: the recovery policy retries the turn and the next attempt shows the model
 * what was wrong. Nothing of it is executed.
 */
export function toTurnResult(reply: ModelReply, offer: Offer, info: AgentInfo, input: TurnInput): { actions?: Action[]; output?: Json } {
  const problems: FieldIssue[] = [];
  const actions: Action[] = [];
  reply.calls.forEach((call, i) => {
    const target = resolveCall(call.name, offer, info);
    if (!target) {
      const known = offer.tools.map((t) => t.name).join(', ') || 'none';
      problems.push({ path: `calls.${i}.name`, message: `unknown tool "${call.name}" (offered: ${known})` });
      return;
    }
    let args: Json;
    try {
      args = call.arguments.trim() === '' ? {} : (JSON.parse(call.arguments) as Json);
    } catch (err) {
      problems.push({ path: `calls.${i}.arguments`, message: `arguments of ${call.name} are not valid JSON (${err instanceof Error ? err.message : String(err)}): ${preview(call.arguments)}` });
      return;
    }
    const id = callId(input.task.turn, i);
    if (target.kind === 'tool') {
      const value = target.wrapped && isObject(args) ? (args.value ?? null) : args;
      actions.push({ type: 'tool', tool: target.tool, input: value, id });
    } else if (target.kind === 'memory') {
      // The turn protocol checks the shape (a bad call is a protocol error the model is shown).
      actions.push({ ...(isObject(args) ? args : {}), type: target.action, id } as unknown as Action);
    } else if (target.kind === 'call') {
      const agent = isObject(args) && typeof args.agent === 'string' ? args.agent : '';
      if (agent === '') problems.push({ path: `calls.${i}.arguments.agent`, message: `${CALL_AGENT_TOOL} needs "agent", one of: ${(input.grants.mesh ?? []).join(', ')}` });
      else actions.push({ type: 'call_agent', agent, input: isObject(args) ? (args.input ?? null) : null, id });
    } else {
      actions.push({ type: 'handoff', agent: target.agent, input: args, id });
    }
  });

  let output: Json | undefined;
  if (reply.final !== null) {
    if (actions.some((a) => a.type === 'handoff')) {
      problems.push({ path: 'calls', message: `${ANSWER_TOOL} ends the task and cannot be combined with a delegation: delegate first, answer when the results are back` });
    }
    try {
      output = unwrap(JSON.parse(reply.final) as Json, info.output);
    } catch (err) {
      problems.push({ path: 'output', message: `the answer is not valid JSON (${err instanceof Error ? err.message : String(err)})` });
    }
  } else if (reply.calls.length === 0) {
    if (reply.refusal !== null) throw new AgentProtocolError(info.name, `the model refused: ${reply.refusal}`, { violations: [{ path: 'output', message: 'refused' }] });
    const text = reply.text.trim();
    if (text === '') {
      throw new AgentProtocolError(info.name, `the model gave an empty answer (stop reason: ${reply.stop})`, { violations: [{ path: 'output', message: 'empty' }] });
    }
    if (!info.output.json) output = reply.text;
    else {
      try {
        output = unwrap(JSON.parse(stripFences(text)) as Json, info.output);
      } catch {
        const cut = reply.stop === 'length' ? ' (the answer was cut off at maxTokens)' : '';
        problems.push({ path: 'output', message: `the answer must be JSON but is not${cut}: ${preview(text)}` });
      }
    }
  }
  if (problems.length > 0) {
    throw new AgentProtocolError(info.name, `the model's answer cannot be used: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, {
      violations: problems.map((p) => ({ path: p.path, message: p.message })),
    });
  }
  return { ...(actions.length > 0 || output === undefined ? { actions } : {}), ...(output === undefined ? {} : { output }) };
}
