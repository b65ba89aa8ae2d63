import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { stableJson } from '../core/json.ts';
import type { Clock } from '../core/clock.ts';
import { InvalidInputError, NotFoundError, SpineError, toErrorInfo } from '../core/errors.ts';
import { ceilingRaise } from '../policy/raise.ts';
import { newId } from '../core/ids.ts';
import { APPROVAL_STATES } from '../core/states.ts';
import type { Json, Run } from '../core/types.ts';
import { isTerminal, waitForRun } from '../engine/runs.ts';
import type { Envelope } from '../core/envelope.ts';
import type { Intake } from '../intake/intake.ts';
import type { Store } from '../store/store.ts';
import { isAllowed, scopesFor, type Permission, type Principal } from './auth.ts';
import { SEARCH_MODES, resolveGrants, type ScopeMatch } from '../core/memory.ts';
import { embedderFor } from '../engine/memory-actions.ts';
import { getFact, searchFacts } from '../memory/operator.ts';
import { factForTurn } from '../memory/recall.ts';
import type { AgentDirectory } from './directory.ts';
import type { MeshShim } from '../engine/mesh-shim.ts';

/**
 * Spine as an MCP server (docs/mcp.md): tools to submit work, read a run, and list
 * and decide approvals, so any MCP client (an IDE, a desktop assistant) can drive
 * Spine. Served over stdio by `spine mcp` and over Streamable HTTP by the gateway
 * (`POST /v1/mcp`). Work submitted here is an envelope on channel `mcp`, committed by
 * the same Intake as every other door, so it is routed, deduplicated and audited
 * alike. Each tool checks the caller's scopes: reading needs `viewer`; submitting and
 * deciding approvals need `operator`.
 */

export interface SpineMcpDeps {
  store: Store;
  intake: Intake;
  clock: Clock;
  /** The agents, for `list_agents`; the tool is left out without it. */
  agents?: AgentDirectory | undefined;
  /** Longest `waitMs` a submission may ask for (default 120 000). */
  maxWaitMs?: number;
  /** The mesh shim of this process's workers, for `call_agent` (left out without it). */
  shim?: MeshShim;
}

export const MCP_CHANNEL = 'mcp';
const DEFAULT_WAIT_MS = 30_000;
const MAX_WAIT_MS = 120_000;
const APPROVAL_FILTER = [...APPROVAL_STATES, 'all'] as const;

const VERSION = '0.1.0';

/** A tool's failure as MCP reports it: `isError`, with the Spine error (code and retryability from the catalogue) as text and as structured content. */
function failure(err: unknown): CallToolResult {
  const info = toErrorInfo(err);
  const error = { code: info.code, message: info.message, retryable: info.retryable, ...(info.details === undefined ? {} : { details: info.details }) };
  return { isError: true, content: [{ type: 'text', text: `${info.code}: ${info.message}` }], structuredContent: { error } };
}

function success(value: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(value, null, 2) }], structuredContent: value };
}

class Forbidden extends SpineError {
  constructor(p: Principal, need: Permission, what: string, channel?: string) {
    super('FORBIDDEN', `token "${p.name}" (scopes: ${p.scopes.join(', ') || 'none'}) may not ${what}; needs one of: ${scopesFor(need, channel).join(', ')}`);
  }
}

function runSummary(run: Run): Record<string, Json> {
  return {
    id: run.id,
    agent: run.agent,
    state: run.state,
    output: run.output,
    error: run.error as unknown as Json,
    envelopeId: run.envelopeId,
    sessionKey: run.sessionKey,
    createdAt: run.createdAt,
    finishedAt: run.finishedAt,
  };
}

/** Builds an MCP server whose tools act as `principal` (one per connection or HTTP request). */
export function createSpineMcpServer(deps: SpineMcpDeps, principal: Principal, opts: { signal?: AbortSignal } = {}): McpServer {
  const { store, intake, clock } = deps;
  const maxWait = deps.maxWaitMs ?? MAX_WAIT_MS;
  const server = new McpServer({ name: 'spine', version: VERSION }, { instructions: 'Spine orchestrates agents durably. Submit work with submit_work, follow it with get_run, and decide pending human approvals with list_approvals and decide_approval.' });
  const need = (permission: Permission, what: string, channel?: string) => {
    if (!isAllowed(principal, permission, channel)) throw new Forbidden(principal, permission, what, channel);
  };
  const guarded =
    <A>(fn: (args: A, signal: AbortSignal) => Promise<Record<string, unknown>>) =>
    async (args: A, extra: { signal: AbortSignal }): Promise<CallToolResult> => {
      try {
        return success(await fn(args, opts.signal ? AbortSignal.any([extra.signal, opts.signal]) : extra.signal));
      } catch (err) {
        return failure(err);
      }
    };

  server.registerTool(
    'submit_work',
    {
      title: 'Submit work',
      description:
        'Send work to Spine: the text (and optional JSON data) becomes an envelope on channel "mcp", routed by the bindings or straight to `agent`, and starts a run. ' +
        'With `wait`, blocks until the run finishes (or `waitMs` passes) and returns its output. Retrying with the same `idempotencyKey` returns the same run.',
      inputSchema: {
        agent: z.string().min(1).optional().describe('send straight to this agent (needs the operator scope); without it the bindings decide'),
        text: z.string().max(1_000_000).optional().describe('the message'),
        data: z.unknown().optional().describe('structured input, handed to the agent as envelope.data'),
        idempotencyKey: z.string().min(1).max(200).optional().describe('dedupes retries: the same key returns the same run'),
        wait: z.boolean().optional().describe('wait for the run to finish'),
        waitMs: z.number().int().min(1).max(maxWait).optional().describe(`how long to wait (default ${DEFAULT_WAIT_MS} ms)`),
      },
      annotations: { destructiveHint: false, idempotentHint: true, openWorldHint: true },
    },
    guarded(async (args, signal) => {
      if (args.agent !== undefined) need('operate', 'address an agent directly ("agent")');
      else need('submit', `submit work on channel "${MCP_CHANNEL}"`, MCP_CHANNEL);
      const key = args.idempotencyKey ?? newId('idem');
      const envelope: Envelope = {
        channel: MCP_CHANNEL,
        account: 'default',
        peer: { kind: 'dm', id: principal.name },
        parentPeer: null,
        sender: { id: principal.name },
        thread: null,
        text: args.text ?? '',
        data: (args.data ?? null) as Json,
        idempotencyKey: `${MCP_CHANNEL}:${principal.name}:${key}`,
        replyTo: null,
      };
      const result = await intake.accept(envelope, { actor: `mcp:${principal.name}`, ...(args.agent ? { agent: args.agent } : {}) });
      if (!result.created && (result.envelope.text !== envelope.text || stableJson(result.envelope.data) !== stableJson(envelope.data))) {
        throw new SpineError('IDEMPOTENCY_KEY_REUSED', `idempotencyKey "${key}" was already used for different work (envelope ${result.envelope.id}); use a new key`);
      }
      if (result.envelope.state === 'unroutable' || !result.run) {
        const why = result.envelope.error?.message ?? 'no binding matches this work';
        throw new SpineError('UNROUTABLE', `${why} (envelope ${result.envelope.id}); name an \`agent\`, or add a binding for channel "${MCP_CHANNEL}"`);
      }
      let run = result.run;
      let waited = false;
      if (args.wait) {
        waited = true;
        run = await waitForRun(store, run.id, { timeoutMs: args.waitMs ?? Math.min(DEFAULT_WAIT_MS, maxWait), signal });
      }
      return { run: runSummary(run), envelopeId: result.envelope.id, idempotencyKey: key, duplicate: !result.created, finished: isTerminal(run), waited };
    }),
  );

  server.registerTool(
    'get_run',
    {
      title: 'Read a run',
      description: "A run's state, output or error, and its tasks (who did what).",
      inputSchema: { runId: z.string().min(1).describe('the run id, e.g. run_01…') },
      annotations: { readOnlyHint: true },
    },
    guarded(async (args) => {
      need('read', 'read runs');
      const run = await store.runs.get(args.runId);
      if (!run) throw new NotFoundError('run', args.runId);
      const tasks = await store.tasks.list({ runId: run.id, limit: 1000 });
      return {
        run: runSummary(run),
        tasks: tasks.map((t) => ({ id: t.id, parentId: t.parentId, agent: t.agent, state: t.state, turns: t.turns, attempt: t.attempt, error: t.error as unknown as Json })),
      };
    }),
  );

  /** Read grants: those of a configured agent when `asAgent` is named, else every scope of the tenant (read tokens are operators). */
  const memoryGrants = (asAgent: string | undefined): ScopeMatch[] | undefined => {
    if (asAgent === undefined) return undefined;
    if (!intake.registry.agents.has(asAgent)) throw new NotFoundError('agent', asAgent);
    return resolveGrants(intake.registry.policy.memoryGrants(asAgent).read, { agent: asAgent, runId: null, sessionKey: null });
  };
  const memoryArgs = {
    tenant: z.string().min(1).max(128).optional().describe('whose memory (default: default)'),
    asAgent: z.string().min(1).optional().describe("read under this configured agent's memory grants (default: every scope)"),
    asOf: z.number().int().min(0).optional().describe('what was true at this time (epoch ms)'),
  };

  server.registerTool(
    'search_memory',
    {
      title: 'Search shared memory',
      description: "Facts in Spine's shared memory that match `query` (its words, or its meaning when vectors are configured), best first, each with its version and provenance (who wrote it, from what).",
      inputSchema: {
        query: z.string().min(1).max(1000),
        scope: z.string().min(1).optional().describe('only this scope and below, e.g. team/research'),
        k: z.number().int().min(1).max(100).optional(),
        mode: z.enum(SEARCH_MODES).optional().describe('lexical (words), vector (meaning; needs memory.embedder) or hybrid (both, fused by rank); default hybrid when vectors are configured'),
        ...memoryArgs,
      },
      annotations: { readOnlyHint: true },
    },
    guarded(async (args) => {
      need('read', 'read memory');
      const grants = memoryGrants(args.asAgent);
      const hits = await searchFacts(
        store,
        embedderFor(intake.registry),
        { tenant: args.tenant ?? 'default', ...(grants ? { grants } : {}) },
        { query: args.query, ...(args.k ? { k: args.k } : {}), ...(args.scope ? { scope: args.scope } : {}), ...(args.asOf === undefined ? {} : { asOf: args.asOf }), ...(args.mode ? { mode: args.mode } : {}) },
        clock.now(),
      );
      return { facts: hits.map((h) => factForTurn(h.fact, h.score)) };
    }),
  );

  server.registerTool(
    'get_fact',
    {
      title: 'Read a fact',
      description: 'The current value of one fact in shared memory (or the one true at `asOf`), with its version and provenance.',
      inputSchema: { scope: z.string().min(1), key: z.string().min(1), ...memoryArgs },
      annotations: { readOnlyHint: true },
    },
    guarded(async (args) => {
      need('read', 'read memory');
      const grants = memoryGrants(args.asAgent);
      const fact = await getFact(store, { tenant: args.tenant ?? 'default', ...(grants ? { grants } : {}) }, args.scope, args.key, args.asOf, clock.now());
      if (!fact) throw new NotFoundError('fact', `${args.scope} ${args.key}`);
      return { fact: factForTurn(fact) };
    }),
  );

  server.registerTool(
    'list_approvals',
    {
      title: 'List approvals',
      description: 'Human approvals Spine is waiting for (pending by default): what an agent wants to do, which rule asked for a human, and until when.',
      inputSchema: {
        state: z.enum(APPROVAL_FILTER).optional().describe('pending (default), approved, denied, expired or all'),
        runId: z.string().min(1).optional().describe('only this run'),
        limit: z.number().int().min(1).max(500).optional().describe('at most this many (default 50)'),
      },
      annotations: { readOnlyHint: true },
    },
    guarded(async (args) => {
      need('read', 'read approvals');
      const state = args.state ?? 'pending';
      const approvals = await store.approvals.list({ limit: args.limit ?? 50, ...(state === 'all' ? {} : { state }), ...(args.runId ? { runId: args.runId } : {}) });
      return { approvals };
    }),
  );

  server.registerTool(
    'decide_approval',
    {
      title: 'Decide an approval',
      description: 'Approve or deny a pending approval; the waiting task resumes (or gets the refusal). Recorded in the audit trail with your name.',
      inputSchema: {
        approvalId: z.string().min(1).describe('the approval id, from list_approvals'),
        approve: z.boolean().describe('true to approve, false to deny'),
        reason: z.string().max(2000).optional().describe('why (kept with the decision)'),
        raiseTo: z.number().positive().max(1e9).optional().describe("approving an escalation by a per-run cost ceiling: this run's new ceiling in USD"),
      },
      annotations: { destructiveHint: true, idempotentHint: false },
    },
    guarded(async (args) => {
      need('operate', 'decide approvals');
      if (args.raiseTo !== undefined && !args.approve) throw new InvalidInputError('raiseTo', 'a ceiling is raised only when approving');
      const raise = args.raiseTo === undefined ? undefined : await ceilingRaise(store, intake.registry.policy.policy, args.approvalId, args.raiseTo, 'raiseTo', clock.now());
      const approval = await store.approvals.decide(
        args.approvalId,
        { approve: args.approve, actor: principal.name, ...(args.reason !== undefined ? { reason: args.reason } : {}), ...(raise ? { raise } : {}) },
        clock.now(),
      );
      return { approval };
    }),
  );

  if (deps.shim) {
    const shim = deps.shim;
    server.registerTool(
      'call_agent',
      {
        title: 'Call an agent over a mesh path',
        description:
          "For an agent outside Spine, during its turn: call one of the agents its turn input lists in `grants.mesh`, with the turn's `mesh.token`, and get the answer now. " +
          'The same checks and shadow records as a `call_agent` action (docs/mesh.md); the capability, not your token\'s scopes, decides who may call.',
        inputSchema: {
          token: z.string().min(1).max(200).describe("the turn's capability (`mesh.token` of its turn input)"),
          agent: z.string().min(1).max(200).describe('the callee, one of `grants.mesh`'),
          input: z.unknown().optional().describe("the callee's task input"),
          contract: z.string().min(1).max(200).optional().describe("the contract the input is declared as (default: the callee's input contract)"),
          id: z.string().min(1).max(200).optional().describe('echoed in the result'),
        },
        annotations: { destructiveHint: false, openWorldHint: true },
      },
      async (args): Promise<CallToolResult> => {
        try {
          const { token, input, ...rest } = args;
          const result = await shim.call(token, { ...rest, ...(input === undefined ? {} : { input: input as Json }) });
          return result.ok ? success({ ...result }) : failure(SpineError.fromInfo(result.error));
        } catch (err) {
          return failure(err);
        }
      },
    );
  }

  if (deps.agents) {
    const directory = deps.agents;
    server.registerTool(
      'list_agents',
      {
        title: 'List agents',
        description: 'The agents work can be sent to, with their descriptions and input/output contracts.',
        inputSchema: {},
        annotations: { readOnlyHint: true },
      },
      guarded(async () => {
        need('read', 'list agents');
        return { agents: directory() };
      }),
    );
  }
  return server;
}

/**
 * The gateway's MCP endpoint: Streamable HTTP in stateless JSON mode. Each POST gets
 * its own server acting as the caller's token, so any gateway instance can answer any
 * request (no session lives in memory). GET (a server-initiated event stream) is not
 * served: the gateway answers it 405 with `Allow: POST`, as the transport spec allows.
 */
export function createMcpHttpHandler(deps: SpineMcpDeps): {
  post(req: Request, principal: Principal, body: unknown): Promise<Response>;
} {
  return {
    async post(req, principal, body) {
      const server = createSpineMcpServer(deps, principal, { signal: req.signal });
      const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      await server.connect(transport);
      try {
        return await transport.handleRequest(req, { parsedBody: body });
      } finally {
        void server.close().catch(() => {});
      }
    },
  };
}
