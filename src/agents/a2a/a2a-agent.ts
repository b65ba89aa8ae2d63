import { SendMessageRequest, TaskState, type AgentCard, type Artifact, type Message, type Part, type Task } from '@a2a-js/sdk';
import { ClientFactory, DefaultAgentCardResolver, JsonRpcTransportFactory, RestTransportFactory, type AgentCardResolver, type Client } from '@a2a-js/sdk/client';
import { A2A_VERSIONS, speaksA2aVersion } from '../../core/a2a-version.ts';
import { AgentError } from '../../core/errors.ts';
import type { Json, TurnInput } from '../../core/types.ts';
import type { Agent, AgentContext } from '../../core/agent.ts';

export interface A2aAgentOptions {
  name: string;
  /** The agent's base URL (its card is at `<url>/.well-known/agent-card.json`) or the card's own URL (`….json`). */
  url: string;
  /** Headers for the card fetch and every call, each read when it is sent. */
  headers?: Record<string, () => string>;
  /** Use streaming when the card offers it (default true); otherwise a blocking send and polling. */
  streaming?: boolean;
  /** How often an unfinished task is polled (default 500 ms). */
  pollMs?: number;
  /** Origins besides the configured URL's that the Agent Card may point calls to (they get the headers too). */
  allowedOrigins?: string[];
}

const TERMINAL = new Set([TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_REJECTED]);
const INTERRUPTED = new Set([TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED]);

/** What a turn has seen of the remote task so far. */
interface Progress {
  task: Task | null;
  message: Message | null;
  artifacts: Map<string, Artifact>;
}

/**
 * A remote A2A agent as a Spine agent (docs/a2a.md). Each turn sends the task's input
 * as one A2A message (a text part, plus a data part for structured input), follows the
 * remote task through its stream or by polling until it ends, and answers
 * `{output}` built from the task's artifacts. The remote agent works on its own: it
 * asks Spine for no tools or handoffs.
 */
export class A2aAgent implements Agent {
  readonly kind = 'a2a';
  private readonly opts: A2aAgentOptions;
  private client: Promise<Client> | null = null;

  constructor(opts: A2aAgentOptions) {
    this.opts = opts;
  }

  /**
   * Every request goes to the configured origin (or one the config allows): the Agent
   * Card is the remote's word, and a card naming another host would otherwise receive
   * the configured credentials — an internal host included.
   */
  private fetchWithHeaders = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const target = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url).origin;
    const allowed = [new URL(this.opts.url).origin, ...(this.opts.allowedOrigins ?? []).map((o) => new URL(o).origin)];
    if (!allowed.includes(target)) {
      return Promise.reject(
        new AgentError(this.opts.name, `the Agent Card points to ${target}, not to the configured origin ${allowed[0]}; refused (list it in allowedOrigins to trust it)`, {
          retryable: false,
        }),
      );
    }
    const extra = this.opts.headers ?? {};
    if (Object.keys(extra).length === 0) return fetch(input, init);
    const headers = new Headers(init?.headers);
    for (const [k, fn] of Object.entries(extra)) headers.set(k, fn());
    return fetch(input, { ...init, headers });
  };

  /**
   * The client, made from the Agent Card on first use (and again after a failure). A
   * card of A2A 0.3 (card-level `protocolVersion`) is translated and spoken to with the
   * SDK's v0.3 compat transports; a card whose interfaces all declare another version is
   * refused once, not retried: another attempt would meet the same card.
   */
  private getClient(): Promise<Client> {
    if (!this.client) {
      const fetchImpl = this.fetchWithHeaders;
      const legacyCompat = { enabled: true };
      const factory = new ClientFactory({
        transports: [new JsonRpcTransportFactory({ fetchImpl, legacyCompat }), new RestTransportFactory({ fetchImpl, legacyCompat })],
        cardResolver: this.versionCheckedResolver(new DefaultAgentCardResolver({ fetchImpl, legacyCompat })),
      });
      const { url } = this.opts;
      const pending = /\.json$/i.test(new URL(url).pathname) ? factory.createFromUrl(url, '') : factory.createFromUrl(url.endsWith('/') ? url : `${url}/`);
      this.client = pending.catch((err: unknown) => {
        this.client = null;
        if (err instanceof AgentError) throw err;
        throw new AgentError(this.opts.name, `cannot get the A2A Agent Card from ${url}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      });
    }
    return this.client;
  }

  private versionCheckedResolver(inner: DefaultAgentCardResolver): AgentCardResolver {
    const check = (card: AgentCard): AgentCard => {
      const versions = card.supportedInterfaces.map((i) => i.protocolVersion || '0.3');
      if (versions.length > 0 && !versions.some(speaksA2aVersion)) {
        throw new AgentError(
          this.opts.name,
          `the remote A2A agent at ${this.opts.url} speaks A2A ${[...new Set(versions)].join(', ')}; Spine speaks A2A ${A2A_VERSIONS.join(' and ')}`,
          { retryable: false, details: { versions: [...new Set(versions)], supported: [...A2A_VERSIONS] } },
        );
      }
      return card;
    };
    return {
      resolve: async (baseUrl, path) => check(await inner.resolve(baseUrl, path)),
      normalizeAgentCard: (card) => check(inner.normalizeAgentCard(card)),
    };
  }

  async turn(input: TurnInput, ctx: AgentContext): Promise<unknown> {
    const { name } = this.opts;
    const client = await this.getClient();
    const request = SendMessageRequest.fromJSON({ message: messageFor(input), configuration: { acceptedOutputModes: [], returnImmediately: false } });
    const seen: Progress = { task: null, message: null, artifacts: new Map() };
    try {
      if (this.opts.streaming === false) {
        const result = await client.sendMessage(request, { signal: ctx.signal });
        if ('messageId' in result) seen.message = result;
        else applyTask(seen, result);
      } else {
        for await (const event of client.sendMessageStream(request, { signal: ctx.signal })) {
          apply(seen, event.payload);
          if (seen.message || done(seen.task)) break;
        }
      }
      // A stream that ended early, or a blocking send that returned a working task: poll.
      while (seen.task && !done(seen.task) && !seen.message) {
        await sleep(this.opts.pollMs ?? 500, ctx.signal);
        applyTask(seen, await client.getTask({ tenant: '', id: seen.task.id }, { signal: ctx.signal }));
      }
    } catch (err) {
      if (ctx.signal.aborted) {
        // The turn timed out or the task was cancelled: tell the remote agent, best effort.
        if (seen.task && !done(seen.task)) void client.cancelTask({ tenant: '', id: seen.task.id, metadata: undefined }).catch(() => {});
        throw ctx.signal.reason instanceof Error ? ctx.signal.reason : err;
      }
      if (err instanceof AgentError) throw err;
      throw new AgentError(name, `A2A call to ${this.opts.url} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (seen.message) return { output: partsToJson(seen.message.parts) };
    const task = seen.task!;
    const state = task.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED;
    const said = statusText(task);
    const details = { taskId: task.id, state: TaskState[state] ?? String(state) };
    switch (state) {
      case TaskState.TASK_STATE_COMPLETED: {
        const parts = [...seen.artifacts.values()].flatMap((a) => a.parts);
        return { output: partsToJson(parts.length > 0 ? parts : (task.status?.message?.parts ?? [])) };
      }
      case TaskState.TASK_STATE_FAILED:
        throw new AgentError(name, `A2A task ${task.id} failed${said ? `: ${said}` : ''}`, { details });
      case TaskState.TASK_STATE_REJECTED:
        throw new AgentError(name, `A2A task ${task.id} was rejected${said ? `: ${said}` : ''}`, { retryable: false, details });
      case TaskState.TASK_STATE_CANCELED:
        throw new AgentError(name, `A2A task ${task.id} was cancelled by the remote agent${said ? `: ${said}` : ''}`, { retryable: false, details });
      default:
        // input-required / auth-required: the remote agent wants a conversation Spine's turn cannot have.
        throw new AgentError(name, `A2A task ${task.id} stopped in state ${details.state}${said ? `: ${said}` : ''}`, { retryable: false, details });
    }
  }
}

function done(task: Task | null): boolean {
  const s = task?.status?.state;
  return s !== undefined && (TERMINAL.has(s) || INTERRUPTED.has(s));
}

function applyTask(seen: Progress, task: Task): void {
  seen.task = task;
  for (const a of task.artifacts) seen.artifacts.set(a.artifactId, a);
}

function apply(seen: Progress, payload: { $case: string; value: unknown } | undefined): void {
  if (!payload) return;
  switch (payload.$case) {
    case 'task':
      applyTask(seen, payload.value as Task);
      break;
    case 'message':
      seen.message = payload.value as Message;
      break;
    case 'statusUpdate': {
      const u = payload.value as { taskId: string; contextId: string; status: Task['status'] };
      seen.task = { ...(seen.task ?? { id: u.taskId, contextId: u.contextId, artifacts: [], history: [], metadata: undefined }), status: u.status };
      break;
    }
    case 'artifactUpdate': {
      const u = payload.value as { artifact: Artifact | undefined; append: boolean };
      if (!u.artifact) break;
      const prev = seen.artifacts.get(u.artifact.artifactId);
      seen.artifacts.set(u.artifact.artifactId, u.append && prev ? { ...prev, parts: [...prev.parts, ...u.artifact.parts] } : u.artifact);
      break;
    }
  }
}

/** The A2A message for a turn: the input as text (a string, or its `text` field, or JSON), plus a data part for structured input. */
export function messageFor(input: TurnInput): Json {
  const value = input.task.input;
  const text =
    typeof value === 'string'
      ? value
      : value !== null && typeof value === 'object' && !Array.isArray(value) && typeof value.text === 'string'
        ? value.text
        : JSON.stringify(value);
  const parts: Json[] = [{ text, mediaType: 'text/plain' }];
  if (typeof value !== 'string') parts.push({ data: value, mediaType: 'application/json' });
  return {
    messageId: `${input.task.id}:${input.task.turn}:${input.task.attempt}`,
    contextId: input.session?.key ?? input.task.runId,
    role: 'ROLE_USER',
    parts,
    // The turn's mesh capability rides along (docs/mesh.md): the remote agent may call its mesh paths while it answers.
    metadata: { spine: { runId: input.task.runId, taskId: input.task.id, agent: input.task.agent, ...(input.mesh ? { mesh: { token: input.mesh.token, url: input.mesh.url } } : {}) } },
  };
}

/** A2A parts as one JSON value: one part is its value; several are an array of values. */
export function partsToJson(parts: Part[]): Json {
  const values = parts.map(partValue);
  if (values.length === 0) return null;
  return values.length === 1 ? values[0]! : values;
}

function partValue(p: Part): Json {
  const c = p.content;
  switch (c?.$case) {
    case 'text':
      return c.value;
    case 'data':
      return (c.value ?? null) as Json;
    case 'url':
      return { file: { url: c.value, mediaType: p.mediaType, filename: p.filename } };
    case 'raw':
      return { file: { base64: Buffer.from(c.value).toString('base64'), mediaType: p.mediaType, filename: p.filename } };
    default:
      return null;
  }
}

function statusText(task: Task): string {
  return (task.status?.message?.parts ?? [])
    .map((p) => (p.content?.$case === 'text' ? p.content.value : ''))
    .filter(Boolean)
    .join('\n');
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
