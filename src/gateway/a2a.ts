import { AgentCard, Part, TaskState, type Artifact, type Message, type Task } from '@a2a-js/sdk';
import {
  AgentEvent,
  DefaultExecutionEventBusManager,
  DefaultRequestHandler,
  InMemoryTaskStore,
  JsonRpcTransportHandler,
  defaultServerCallContextBuilder,
  validateVersion,
  type AgentExecutor,
  type ExecutionEventBus,
  type RequestContext,
  type User,
} from '@a2a-js/sdk/server';
import { formatSSEErrorEvent, formatSSEEvent, SSE_HEADERS } from '@a2a-js/sdk';
import { duplicateInterfacesForLegacy, isLegacyJsonRpcMethod } from '@a2a-js/sdk/compat/v0_3';
import { LegacyJsonRpcTransportHandler } from '@a2a-js/sdk/compat/v0_3/server';
import { VersionNotSupportedError } from '@a2a-js/sdk/errors';
import { A2A_VERSIONS, speaksA2aVersion } from '../core/a2a-version.ts';
import type { Clock } from '../core/clock.ts';
import { SpineError, toErrorInfo } from '../core/errors.ts';
import type { Json, Run } from '../core/types.ts';
import { isTerminal } from '../engine/runs.ts';
import type { Envelope } from '../core/envelope.ts';
import type { Intake } from '../intake/intake.ts';
import type { Store } from '../store/store.ts';
import type { Principal } from './auth.ts';
import type { AgentDirectory, AgentInfo } from './directory.ts';
import { ApiError } from './errors.ts';

/**
 * Spine agents as A2A agents (docs/a2a.md), with the official `@a2a-js/sdk` server:
 * each agent has an Agent Card at `/v1/a2a/<agent>/.well-known/agent-card.json` and a
 * JSON-RPC endpoint at `/v1/a2a/<agent>`. A message sent there becomes an envelope on
 * channel `a2a`, committed by Intake with its run (durable before acknowledged); the
 * A2A task follows the run (submitted → working → completed | failed | canceled) and
 * the run's output is the task's artifact. Cancelling the A2A task cancels the run.
 */

export interface A2aDeps {
  store: Store;
  intake: Intake;
  clock: Clock;
  agents?: AgentDirectory | undefined;
  /** How often a task's run is polled (default 100 ms). */
  pollMs?: number;
}

export const A2A_CHANNEL = 'a2a';
const PROTOCOL_VERSION = '1.0';
const SPINE_VERSION = '0.1.0';
const RUN_META = 'spineRunId';

class TokenUser implements User {
  private readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
  get isAuthenticated(): boolean {
    return true;
  }
  get userName(): string {
    return this.name;
  }
}

/** The Agent Card of a Spine agent served at `base` (e.g. https://spine.example.com/v1/a2a/writer). */
export function agentCardFor(agent: AgentInfo, base: string): AgentCard {
  const description = agent.description ?? `Spine agent "${agent.name}" (${agent.kind})`;
  const contract = [agent.input ? `input contract ${agent.input.id}` : null, agent.output ? `output contract ${agent.output.id}` : null].filter(Boolean).join(', ');
  return AgentCard.fromJSON({
    name: agent.name,
    description,
    version: SPINE_VERSION,
    // The same endpoint speaks 1.0 and 0.3 (the JSON-RPC method names differ: SendMessage, message/send).
    supportedInterfaces: duplicateInterfacesForLegacy([{ url: base, protocolBinding: 'JSONRPC', protocolVersion: PROTOCOL_VERSION, tenant: '' }], ['JSONRPC']),
    provider: { organization: 'Spine', url: new URL(base).origin },
    capabilities: { streaming: true, pushNotifications: false, extendedAgentCard: false },
    securitySchemes: { bearer: { httpAuthSecurityScheme: { scheme: 'Bearer', description: 'a Spine API token (spine tokens create) with the operator scope' } } },
    securityRequirements: [{ schemes: { bearer: { list: [] } } }],
    defaultInputModes: ['text/plain', 'application/json'],
    defaultOutputModes: ['application/json', 'text/plain'],
    skills: [
      {
        id: agent.name,
        name: agent.name,
        description: contract ? `${description} (${contract})` : description,
        tags: ['spine', agent.kind],
        inputModes: ['text/plain', 'application/json'],
        outputModes: ['application/json', 'text/plain'],
      },
    ],
  });
}

/**
 * The card an A2A 0.3 client reads (card-level `url`, `protocolVersion`,
 * `preferredTransport`), with the 1.0 `supportedInterfaces` embedded as well, as the
 * SDK's compat layer does: a 1.0 client reading it takes `supportedInterfaces`.
 */
export function legacyAgentCardJson(agent: AgentInfo, base: string): Record<string, unknown> {
  const v1 = AgentCard.toJSON(agentCardFor(agent, base)) as Record<string, unknown>;
  const card = agentCardFor(agent, base);
  return {
    name: card.name,
    description: card.description,
    version: card.version,
    url: base,
    preferredTransport: 'JSONRPC',
    protocolVersion: '0.3.0',
    provider: { organization: 'Spine', url: new URL(base).origin },
    capabilities: { streaming: true, pushNotifications: false },
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a Spine API token (spine tokens create) with the operator scope' } },
    security: [{ bearer: [] }],
    defaultInputModes: card.defaultInputModes,
    defaultOutputModes: card.defaultOutputModes,
    skills: card.skills.map((k) => ({ id: k.id, name: k.name, description: k.description, tags: k.tags, inputModes: k.inputModes, outputModes: k.outputModes })),
    supportedInterfaces: v1.supportedInterfaces,
  };
}

/** The text and data of an A2A message: text parts joined by newlines; one data part's value, or all of them. */
export function messageContent(message: Message | undefined): { text: string; data: Json } {
  const parts = message?.parts ?? [];
  const texts: string[] = [];
  const data: Json[] = [];
  for (const p of parts) {
    const c = p.content;
    if (c?.$case === 'text') texts.push(c.value);
    else if (c?.$case === 'data') data.push(c.value as Json);
    else if (c?.$case === 'url') data.push({ file: { url: c.value, mediaType: p.mediaType, filename: p.filename } });
    else if (c?.$case === 'raw') data.push({ file: { base64: Buffer.from(c.value).toString('base64'), mediaType: p.mediaType, filename: p.filename } });
  }
  return { text: texts.join('\n'), data: data.length === 0 ? null : data.length === 1 ? data[0]! : data };
}

/** A JSON value as A2A parts: a string as text, anything else as data. */
export function outputParts(output: Json): Part[] {
  if (typeof output === 'string') return [Part.fromJSON({ text: output, mediaType: 'text/plain' })];
  return [Part.fromJSON({ data: output, mediaType: 'application/json' })];
}

function statusMessage(taskId: string, contextId: string, text: string): Message {
  return { messageId: `${taskId}:status:${Date.now()}`, contextId, taskId, role: 2, parts: [Part.fromJSON({ text })], metadata: undefined, extensions: [], referenceTaskIds: [] };
}

/** Runs a Spine agent for each A2A task: the task is the run, seen from outside. */
class SpineExecutor implements AgentExecutor {
  private readonly deps: A2aDeps;
  private readonly agent: string;
  /** A2A task id → the run it became, while the executor follows it. */
  private readonly running = new Map<string, { runId: string; cancelled: boolean }>();

  constructor(deps: A2aDeps, agent: string) {
    this.deps = deps;
    this.agent = agent;
  }

  async execute(ctx: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const { taskId, contextId } = ctx;
    const user = ctx.context.user?.userName || 'a2a';
    const now = () => new Date(this.deps.clock.now()).toISOString();
    const status = (state: TaskState, text?: string, runId?: string) =>
      bus.publish(
        AgentEvent.statusUpdate({
          taskId,
          contextId,
          status: { state, message: text === undefined ? undefined : statusMessage(taskId, contextId, text), timestamp: now() },
          metadata: runId ? { [RUN_META]: runId } : undefined,
        }),
      );
    const task: Task = {
      id: taskId,
      contextId,
      status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: now() },
      artifacts: [],
      history: [ctx.userMessage],
      metadata: {},
    };
    bus.publish(AgentEvent.task(task));

    const { text, data } = messageContent(ctx.userMessage);
    const envelope: Envelope = {
      channel: A2A_CHANNEL,
      account: this.agent,
      peer: { kind: 'dm', id: contextId },
      parentPeer: null,
      sender: { id: user },
      thread: null,
      text,
      data,
      // The A2A task id: a retried execution of the same task finds its run again.
      idempotencyKey: `${A2A_CHANNEL}:${this.agent}:${taskId}`,
      replyTo: null,
    };
    let run: Run | null;
    try {
      const accepted = await this.deps.intake.accept(envelope, { actor: `a2a:${user}`, agent: this.agent });
      run = accepted.run;
      if (!run) throw SpineError.fromInfo(accepted.envelope.error ?? { code: 'UNROUTABLE', message: 'the work was not accepted', retryable: false });
    } catch (err) {
      const info = toErrorInfo(err);
      status(TaskState.TASK_STATE_REJECTED, `${info.code}: ${info.message}`);
      bus.finished();
      return;
    }
    const entry = { runId: run.id, cancelled: false };
    this.running.set(taskId, entry);
    status(TaskState.TASK_STATE_WORKING, undefined, run.id);
    try {
      while (!isTerminal(run) && !entry.cancelled) {
        await new Promise((r) => setTimeout(r, this.deps.pollMs ?? 100));
        run = (await this.deps.store.runs.get(run.id)) ?? run;
      }
      if (entry.cancelled) return; // cancelTask has published the final status
      if (run.state === 'succeeded') {
        const artifact: Artifact = {
          artifactId: `${run.id}:output`,
          name: 'output',
          description: `the output of Spine run ${run.id}`,
          parts: outputParts(run.output),
          metadata: { [RUN_META]: run.id },
          extensions: [],
        };
        bus.publish(AgentEvent.artifactUpdate({ taskId, contextId, artifact, append: false, lastChunk: true, metadata: undefined }));
        status(TaskState.TASK_STATE_COMPLETED, undefined, run.id);
      } else if (run.state === 'cancelled') {
        status(TaskState.TASK_STATE_CANCELED, run.error?.message ?? 'cancelled', run.id);
      } else {
        status(TaskState.TASK_STATE_FAILED, run.error ? `${run.error.code}: ${run.error.message}` : 'the run failed', run.id);
      }
    } finally {
      this.running.delete(taskId);
      if (!entry.cancelled) bus.finished();
    }
  }

  async cancelTask(taskId: string, bus: ExecutionEventBus): Promise<void> {
    const entry = this.running.get(taskId);
    if (entry && !entry.cancelled) {
      entry.cancelled = true;
      await this.deps.store.runs.cancel(entry.runId, this.deps.clock.now(), 'a2a', 'cancelled through A2A');
    }
    bus.publish(
      AgentEvent.statusUpdate({
        taskId,
        contextId: '',
        status: { state: TaskState.TASK_STATE_CANCELED, message: undefined, timestamp: new Date(this.deps.clock.now()).toISOString() },
        metadata: entry ? { [RUN_META]: entry.runId } : undefined,
      }),
    );
    bus.finished();
  }
}

/**
 * The gateway's A2A endpoints. One request handler per agent (tasks of an agent live
 * in this gateway's memory while they are followed; the runs themselves are durable).
 */
export function createA2aHttpHandler(deps: A2aDeps): {
  card(agent: string, base: string, requestedVersion: string | undefined): Response;
  rpc(agent: string, base: string, principal: Principal, body: unknown, req: Request): Promise<Response>;
} {
  const perAgent = new Map<string, { executor: SpineExecutor; tasks: InMemoryTaskStore; buses: DefaultExecutionEventBusManager; handlers: Map<string, DefaultRequestHandler> }>();
  const lookup = (name: string): AgentInfo => {
    const info = deps.agents?.().find((a) => a.name === name);
    if (!info) throw new ApiError('NOT_FOUND', `agent "${name}" not found${deps.agents ? '' : ' (A2A is not enabled on this gateway: it has no agent directory)'}`);
    return info;
  };
  const handlerFor = (info: AgentInfo, base: string) => {
    let a = perAgent.get(info.name);
    if (!a) {
      a = { executor: new SpineExecutor(deps, info.name), tasks: new InMemoryTaskStore(), buses: new DefaultExecutionEventBusManager(), handlers: new Map() };
      perAgent.set(info.name, a);
    }
    const key = `${base}\n${info.description ?? ''}`;
    let h = a.handlers.get(key);
    if (!h) {
      h = new DefaultRequestHandler(agentCardFor(info, base), a.tasks, a.executor, a.buses);
      a.handlers.set(key, h);
    }
    return h;
  };

  return {
    card(agent, base, requestedVersion) {
      const info = lookup(agent);
      // As the A2A spec has it, no A2A-Version header means 0.3: such a client gets the 0.3 card (with the 1.0 interfaces embedded).
      const legacy = requestedVersion === undefined || (speaksA2aVersion(requestedVersion) && requestedVersion.trim().startsWith('0.'));
      const body = legacy ? legacyAgentCardJson(info, base) : AgentCard.toJSON(agentCardFor(info, base));
      return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json', 'cache-control': 'no-cache', vary: 'A2A-Version' } });
    },
    async rpc(agent, base, principal, body, req) {
      const info = lookup(agent);
      const handler = handlerFor(info, base);
      const id = (body as { id?: string | number } | null)?.id ?? null;
      const method = (body as { method?: unknown } | null)?.method;
      const headers = Object.fromEntries(req.headers.entries());
      const requested = req.headers.get('a2a-version') ?? undefined;
      // The method names say which protocol a request speaks (0.3: message/send; 1.0: SendMessage), so a 1.0
      // request without the A2A-Version header is served as 1.0, and a 0.3 one by the SDK's compat handler.
      const legacy = typeof method === 'string' && isLegacyJsonRpcMethod(method);
      const context = defaultServerCallContextBuilder({
        user: new TokenUser(principal.name),
        headers,
        extensions: undefined,
        requestedVersion: requested ?? (legacy ? '0.3' : PROTOCOL_VERSION),
      });
      try {
        if (requested !== undefined && !speaksA2aVersion(requested)) {
          throw new VersionNotSupportedError(`A2A version '${requested}' (the A2A-Version header) is not supported: Spine speaks A2A ${A2A_VERSIONS.join(' and ')}`);
        }
        if (!legacy) validateVersion(context.requestedVersion, agentCardFor(info, base), 'JSONRPC');
      } catch (err) {
        return Response.json({ jsonrpc: '2.0', id, error: legacy ? LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError(err) : JsonRpcTransportHandler.mapToJSONRPCError(err) });
      }
      if (legacy) return respond(await new LegacyJsonRpcTransportHandler(handler).handle(body as Record<string, unknown>, context), id, (err) => LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError(err));
      return respond(await new JsonRpcTransportHandler(handler).handle(body as Record<string, unknown>, context), id, (err) => JsonRpcTransportHandler.mapToJSONRPCError(err));
    },
  };
}

/** A JSON-RPC answer: one JSON body, or a stream of them as server-sent events. */
function respond(out: object, id: string | number | null, mapError: (err: unknown) => unknown): Response {
    if (!(Symbol.asyncIterator in out)) return Response.json(out);
    const encoder = new TextEncoder();
    const iterator = (out as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const next = await iterator.next();
          if (next.done) controller.close();
          else controller.enqueue(encoder.encode(formatSSEEvent(next.value)));
        } catch (err) {
          controller.enqueue(encoder.encode(formatSSEErrorEvent({ jsonrpc: '2.0', id, error: mapError(err) })));
          controller.close();
        }
      },
      async cancel() {
        await iterator.return?.();
      },
    });
    return new Response(stream, { status: 200, headers: SSE_HEADERS });
  }
