import { createHash, randomBytes } from 'node:crypto';
import { MeshRefusedError } from '../core/errors.ts';
import { MESH_CALL_PATH, MESH_SHIM_KINDS, type MeshCapability } from '../core/mesh.ts';
import type { ActionResult, CallAgentAction } from '../core/types.ts';
import type { AuditEntry, ClaimedTask, Settlement } from '../store/store.ts';
import { runShimCall, type MeshEnv } from './mesh.ts';

/**
 * The mesh shim (docs/mesh.md, "Agents outside Spine"): an agent that runs outside
 * Spine's process — an HTTP agent's server, a command agent's child, a remote A2A agent
 * — calls its mesh paths during its turn, and gets the answer within that turn, through
 * the gateway's `POST /v1/mesh/call` or the MCP tool `call_agent`.
 *
 * The worker mints a capability just before such a turn is sent, and revokes it when the
 * turn returns, fails or loses its lease: a random secret, kept here only as its SHA-256
 * and never written to the store or a log. A call with it runs the in-process path
 * (engine/mesh.ts) as the task's own call — declared pair, hop limit, cycle, boundary,
 * the pair's rate with `mesh.call` committed before forwarding — and its `mesh.reply`
 * (with the callee's spend settled on the caller's budgets) is committed before the
 * answer is returned: the caller's turn commits later, and the agent acts on the answer
 * now. The capability lives in this process, so the shim is served by the gateway of the
 * process whose worker runs the turn (`spine up`).
 */

export const MESH_TOKEN_PREFIX = 'msh_';

/** How many ended capabilities are remembered, so a late call with one is audited on its task. */
const ENDED_KEPT = 1_024;

/** The turn a capability is bound to. */
export interface ShimTurn {
  env: MeshEnv;
  claimed: ClaimedTask;
  turn: number;
  /** The turn's signal: fires on lease loss or shutdown; the capability is dead from then on. */
  stop: AbortSignal;
}

interface Ended {
  runId: string;
  taskId: string;
  agent: string;
  turn: number;
  actor: string;
  env: MeshEnv;
}

/** What a shim call asks for: the `call_agent` action's fields. */
export type ShimRequest = Omit<CallAgentAction, 'type'>;

export class MeshShim {
  private readonly live = new Map<string, ShimTurn & { calls: number }>();
  private readonly ended = new Map<string, Ended>();
  /** The origin of this process's gateway (e.g. http://127.0.0.1:7400), set once it listens; no capability without it. */
  origin: string | null = null;

  /** Whether a turn of this agent gets a capability: it runs outside the process and has mesh paths. */
  wants(kind: string, mesh: readonly string[]): boolean {
    return this.origin !== null && mesh.length > 0 && (MESH_SHIM_KINDS as readonly string[]).includes(kind);
  }

  /** A capability for one turn; `revoke` when the turn is over (however it ended). */
  mint(turn: ShimTurn): { capability: MeshCapability; revoke: () => void } {
    const token = MESH_TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const id = hashOf(token);
    this.live.set(id, { ...turn, calls: 0 });
    return {
      capability: { token, url: `${this.origin ?? ''}${MESH_CALL_PATH}` },
      revoke: () => {
        if (!this.live.delete(id)) return;
        this.ended.set(id, endedOf(turn));
        if (this.ended.size > ENDED_KEPT) this.ended.delete(this.ended.keys().next().value!);
      },
    };
  }

  /** Live capabilities (for tests and metrics). */
  get size(): number {
    return this.live.size;
  }

  /**
   * One direct call from the turn the capability is bound to. Refused (MESH_REFUSED,
   * reason `capability`) when the capability is unknown, forged or its turn has ended;
   * an ended one is audited on its task as `mesh.refused`. Otherwise the result is the
   * `call_agent` action's result, its records committed.
   */
  async call(token: string, req: ShimRequest): Promise<ActionResult> {
    const id = hashOf(token);
    const live = this.live.get(id);
    if (!live || live.stop.aborted) {
      const ended = live ? endedOf(live) : this.ended.get(id);
      const error = new MeshRefusedError('capability', ended ? `this capability's turn (${ended.agent}, turn ${ended.turn} of ${ended.taskId}) has ended: a direct call is made during the turn` : 'unknown mesh capability: use the `mesh.token` of the turn in progress', { to: req.agent });
      if (ended) {
        const entry: AuditEntry = { runId: ended.runId, taskId: ended.taskId, agent: ended.agent, actor: ended.actor, kind: 'mesh.refused', data: { from: ended.agent, to: req.agent, hop: 1, turn: ended.turn, reason: 'capability', code: error.code } };
        await ended.env.store.audit.append([entry], ended.env.clock.now());
      }
      throw error;
    }
    const { env, claimed, turn, stop } = live;
    const index = live.calls++;
    const { task } = claimed;
    // Its place in the run, beside the turn's actions: run/task/turn/shim.<n>.
    const key = `${task.runId}/${task.id}/${turn}/shim.${index}`;
    const audit: AuditEntry[] = [];
    const settle: Settlement[] = [];
    const action: CallAgentAction = { type: 'call_agent', ...req };
    let result: ActionResult;
    try {
      result = await runShimCall(env, { claimed, index, action, key, settle, audit, stop });
    } catch (err) {
      // The turn lost its lease or is shutting down mid-call: as a crash mid-call, mesh.call stays without mesh.reply.
      if (stop.aborted) throw new MeshRefusedError('capability', `${task.agent}'s turn ended during the call`, { to: req.agent });
      throw err;
    }
    // The reply is on record (and the callee's spend settled) before the agent sees the answer.
    const now = env.clock.now();
    if (audit.length) await env.store.audit.append(audit, now);
    for (const s of settle) await env.store.limits.settle(s, now);
    return result;
  }
}

function endedOf(t: ShimTurn): Ended {
  const { task } = t.claimed;
  return { runId: task.runId, taskId: task.id, agent: task.agent, turn: t.turn, actor: t.env.workerId, env: t.env };
}

function hashOf(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
