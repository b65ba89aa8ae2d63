import type { SearchMode } from './memory.ts';
import type { MeshCapability } from './mesh.ts';
/**
 * Shared types of the Spine core.
 *
 * Glossary (see DESIGN.md for the full vocabulary):
 * - run:    all work caused by one submission; a tree of tasks with one root.
 * - task:   one agent's job inside a run: input, state, attempts, lease, parent.
 * - turn:   one invocation of an agent for a task. A task runs turns until one
 *           returns an `output`; turn N+1 receives the results of turn N's actions.
 * - action: what a turn asks the hub to do. This version knows `tool` (the hub
 *           runs a registered tool, recorded in the effects ledger) and `handoff`
 *           (delegate to another agent: a child task; siblings run in parallel and
 *           the parent's next turn receives all their results — fan-out/join).
 * - effect: an executed side effect, recorded under an idempotency key derived from
 *           its place in the run (`run/task/turn/action`); never executed twice
 *           once recorded.
 * - lease:  a worker's time-limited claim on a task, extended by heartbeats and
 *           fenced by (owner, lease number) so a worker that lost its lease cannot
 *           commit.
 * - audit event: an append-only record of a state transition, turn, action or
 *           effect, written in the same transaction as the change it records.
 */

import type { RunState, TaskState } from './states.ts';
import type { JoinPolicy } from './join.ts';

export type { RunState, TaskState };

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ErrorInfo {
  code: string;
  message: string;
  retryable: boolean;
  details?: Json;
}

export interface Run {
  id: string;
  agent: string;
  state: RunState;
  input: Json;
  output: Json | null;
  error: ErrorInfo | null;
  rootTaskId: string;
  tenant: string;
  /** The envelope that caused the run, and the session it runs in, if any. */
  envelopeId: string | null;
  sessionKey: string | null;
  kind: 'work' | 'router';
  idempotencyKey: string | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

export interface Task {
  id: string;
  runId: string;
  parentId: string | null;
  /** The parent's turn and action index that created this task (a handoff). */
  parentTurn: number | null;
  parentAction: number | null;
  depth: number;
  agent: string;
  state: TaskState;
  input: Json;
  output: Json | null;
  error: ErrorInfo | null;
  /** Number of committed turns. */
  turns: number;
  /** Unfinished children this task waits for. */
  waitingOn: number;
  /** Failed attempts so far (a lease lost to a dead worker is not a failure). */
  attempt: number;
  maxAttempts: number;
  /** Times this task was reclaimed from a worker whose lease expired. */
  reclaims: number;
  /** Monotonic lease number; with leaseOwner it fences commits. */
  leaseNo: number;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  runAt: number;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

// ── The turn protocol (language-neutral JSON; docs/agent-protocol.md) ──────────

export interface ToolAction {
  type: 'tool';
  tool: string;
  input?: Json;
  /** Optional label chosen by the agent, echoed in the result. */
  id?: string;
}

export interface HandoffAction {
  type: 'handoff';
  agent: string;
  input?: Json;
  /** Contract id (`name@version`) the payload is declared as; defaults to the receiver's input contract. */
  contract?: string;
  /** The join policy of this turn's batch of handoffs (the first handoff that names one sets it); default: the agent's. */
  join?: JoinPolicy;
  id?: string;
}

/** An outbound message: committed to the outbox, sent by the dispatcher with retries. */
export interface DeliverAction {
  type: 'deliver';
  /** A configured channel: slack, telegram, discord, webhook, … */
  channel: string;
  account?: string;
  /** The recipient in the channel's terms: a Slack channel id, a Telegram chat id, … */
  to: string;
  thread?: string;
  text: string;
  id?: string;
}

/** A memory write (docs/memory.md): crosses the boundary and is stored once under its effect key. */
export interface RememberAction {
  type: 'remember';
  /** `global`, `team/<name>`, `agent/self/…`, `run/self`, … (`self` is the writer's own). */
  scope: string;
  key: string;
  value: Json;
  /** Searchable text. */
  text?: string;
  /** Compare-and-set: the version the agent read (0: must not exist yet). */
  expectedVersion?: number;
  /** Time to live: milliseconds, or `30s`, `15m`, `4h`, `7d`. */
  ttl?: number | string;
  /** Ids of effects, envelopes or fact versions it was derived from. */
  sources?: string[];
  id?: string;
}

/** A memory read on demand: a search (`query`) or one fact (`key`), under the agent's read grants. */
export interface RecallAction {
  type: 'recall';
  query?: string;
  scope?: string;
  key?: string;
  k?: number;
  /** What was true at this time (epoch ms). */
  asOf?: number;
  /** How a query ranks (core/memory.ts SEARCH_MODES); default hybrid when vectors are configured, else lexical. */
  mode?: SearchMode;
  id?: string;
}

/**
 * A direct call to another agent over a declared mesh path (docs/mesh.md): answered
 * synchronously within this task, with no child task, queue hop or lease, and
 * shadow-logged (`mesh.call`, `mesh.reply`) in the audit trail before and after.
 */
export interface CallAgentAction {
  type: 'call_agent';
  agent: string;
  input?: Json;
  /** Contract id the payload is declared as; defaults to the callee's input contract. */
  contract?: string;
  id?: string;
}

export type Action = ToolAction | HandoffAction | DeliverAction | RememberAction | RecallAction | CallAgentAction;

/** The outcome of one action, handed to the next turn. `taskId` names a handoff's child task. */
export type ActionResult =
  | { index: number; type: Action['type']; id?: string; taskId?: string; ok: true; value: Json }
  | { index: number; type: Action['type']; id?: string; taskId?: string; ok: false; error: ErrorInfo };

export interface Usage {
  inputTokens?: number;
  outputTokens?: number;
  costUsd?: number;
}

/** What an agent answers for one turn. */
export interface TurnResult {
  actions?: Action[];
  output?: Json;
  usage?: Usage;
  /** What the adapter records about how it produced this answer (an LLM agent: model, attempts, failovers). Audited with the turn; never acted on. */
  meta?: { [key: string]: Json };
  /** The join policy of this turn's handoffs (stamped onto them by the hub). */
  join?: JoinPolicy;
}

/** One message of a session's history: what a user sent, or what the agent answered. */
export interface SessionMessage {
  role: 'user' | 'agent';
  runId: string;
  at: number;
  text?: string;
  input?: Json;
  output?: Json;
}

export interface TurnRecord {
  turn: number;
  actions: Action[];
  results: ActionResult[];
  output?: Json;
}

/** What the hub hands an agent for one turn. */
export interface TurnInput {
  protocol: 'spine.turn/1';
  task: {
    id: string;
    runId: string;
    agent: string;
    parentId: string | null;
    depth: number;
    input: Json;
    /** 1-based number of this turn within the task. */
    turn: number;
    /** 1-based attempt number of this turn. */
    attempt: number;
    /** Why the previous attempt failed (e.g. the contract violations of its output), so the agent can correct itself. */
    lastError: ErrorInfo | null;
  };
  /** The conversation this run belongs to, with its recent messages; null for runs outside a session. */
  session: { key: string; history: SessionMessage[] } | null;
  /** Earlier turns of this task with their actions and results. */
  history: TurnRecord[];
  /** Results of the previous turn's actions, in action order. */
  results: ActionResult[];
  /** Facts recalled for this turn (the agent's declared `recall`), each with its version and provenance, to cite. */
  memory: Json[];
  /** `memory`: the scopes it may read and write, `self`, `run` and `session` resolved; `mesh`: the agents it may `call_agent` directly. */
  grants: { tools: string[]; agents: string[]; memory?: { read: string[]; write: string[] }; mesh?: string[] };
  /** The brief of the handoffs just joined (a `Brief`, core/brief.ts), when the agent declares synthesis (docs/synthesis.md). */
  brief?: Json;
  /** A per-turn capability to call `grants.mesh` directly during this turn (agents outside Spine's process; docs/mesh.md). */
  mesh?: MeshCapability;
}
