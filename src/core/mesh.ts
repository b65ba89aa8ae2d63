/**
 * The mesh's vocabulary, declared once (docs/mesh.md): a declared direct path
 * `from → to`, the shadow records a direct call leaves in the audit trail, and why
 * the mesh refuses a call. The engine (engine/mesh.ts), the CLI (`spine mesh log`),
 * the gateway's /v1/mesh/calls and `spine why` all read these.
 */

/** A declared direct path: `from` may call `to` synchronously inside its turn. */
export interface MeshPath {
  from: string;
  to: string;
  /** Calls per minute on this pair (a token bucket shared by every worker). */
  maxPerMinute: number;
  /** The deepest hop this pair may carry: 1 = only a task's own call, 2 = also a callee's nested call, … */
  maxHops: number;
}

export const MESH_DEFAULTS = { maxPerMinute: 60, maxHops: 1 } as const;

/** The audit events of the mesh: committed before forwarding, after the reply, or instead of the call. */
export const MESH_EVENTS = ['mesh.call', 'mesh.reply', 'mesh.refused'] as const;
export type MeshEvent = (typeof MESH_EVENTS)[number];
export const MESH_EVENT_PREFIX = 'mesh.';

/**
 * Why the mesh refuses a call: the pair is not declared, the hop is deeper than the
 * pair allows, the callee is already on the call chain, the pair's rate is spent, or
 * the callee asked for an effect (a direct call has no ledger; effects go through the hub), or
 * an external agent's call through the shim came with a capability that is unknown, forged
 * or no longer live (its turn ended).
 */
export const MESH_REFUSALS = ['undeclared', 'hops', 'cycle', 'rate', 'effects', 'capability'] as const;
export type MeshRefusal = (typeof MESH_REFUSALS)[number];

/** The rate bucket of a pair, in the store's limits (shared by every worker). */
export function meshBucketKey(from: string, to: string): string {
  return `mesh:${from}>${to}`;
}

/** The paths `from` may call. */
export function meshTargets(paths: readonly MeshPath[], from: string): string[] {
  return paths.filter((p) => p.from === from).map((p) => p.to);
}

/**
 * Agent kinds that run outside Spine's process: a turn of one with mesh paths carries a
 * per-turn capability (`mesh: {token, url}`) for the shim (docs/mesh.md). In-process kinds
 * use the `call_agent` action; an LLM agent's turn input may reach a model provider, so it
 * never carries the secret.
 */
export const MESH_SHIM_KINDS = ['http', 'command', 'a2a'] as const;

/** What an external agent's turn input carries to call its mesh paths mid-turn. */
export interface MeshCapability {
  /** The per-turn secret: valid only while this turn runs under its lease. */
  token: string;
  /** Where to call: the gateway's `POST /v1/mesh/call`. */
  url: string;
}

/** The path of the shim's route, under the gateway's origin. */
export const MESH_CALL_PATH = '/v1/mesh/call';
