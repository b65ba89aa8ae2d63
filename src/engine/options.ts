import type { Agent, HealthProbe, ToolDefinition } from '../core/agent.ts';
import type { RetryPolicy } from '../core/backoff.ts';
import type { Json } from '../core/types.ts';
import type { JoinSpec } from '../core/join.ts';
import type { SynthesisSpec } from '../synthesis/config.ts';

export type { RetryPolicy };
import type { ContractRegistry } from '../contracts/registry.ts';
import type { Grants, PolicyEngine } from '../policy/evaluate.ts';
import type { Gate } from '../validation/gate.ts';
import type { BreakerSettings } from '../validation/breakers.ts';
import type { StuckSettings } from '../validation/stuck.ts';
import type { MemorySettings, RecallSpec } from '../memory/settings.ts';
import type { MeshPath } from '../core/mesh.ts';

/** Estimated spend of one crossing, reserved against cost ceilings before it happens. */
export interface Cost {
  micros: number;
  tokens: number;
}

export interface AgentSpec {
  name: string;
  /** What it does, for people and for other agents (A2A cards, MCP, model tool lists). */
  description: string | null;
  agent: Agent;
  timeoutMs: number;
  retry: RetryPolicy;
  /** Contract ids (`name@version`) its input and output must satisfy; null = unchecked. */
  input: string | null;
  output: string | null;
  grants: Grants;
  /** Estimated spend of one turn (an LLM call), reserved before the turn. */
  cost: Cost | null;
  /** When attempts run out: dead-letter the task, or escalate it to a human. */
  onExhausted: 'dead' | 'escalate';
  /** Takes over a task whose attempts are spent or whose breaker is open; null: none. */
  fallback: string | null;
  /** Its health probe (`health`), run by the workers on a schedule; null when none. */
  probe: HealthProbe | null;
  /** How its batches of handoffs join (null: all lanes, failures included). */
  join: JoinSpec | null;
  /** How the claims of its joined handoffs are compared and their conflicts resolved (null: no synthesis). */
  synthesis: SynthesisSpec | null;
  /** What shared memory to search before each turn (handed in the turn's `memory`). */
  recall: readonly RecallSpec[];
}

/** A tool in the catalog. */
export interface ToolSpec extends ToolDefinition {
  input: string | null;
  output: string | null;
  /** `read` changes nothing; `write` changes our own data; `external` reaches the outside world. */
  sideEffect: 'read' | 'write' | 'external';
  cost: Cost | null;
  /** The input's JSON Schema when the tool brings one (MCP tools); contracts (`input`) are what the boundary checks. */
  inputSchema?: Json;
}

export interface EngineLimits {
  /** Deepest handoff nesting; the root task is depth 0. */
  maxDepth: number;
  /** Turns a task may take without returning an output. */
  maxTurns: number;
  /** Times a task may be reclaimed from dead workers before it is dead-lettered. */
  maxReclaims: number;
}

export interface WorkerOptions {
  /** Turns in flight at once in this worker. */
  concurrency: number;
  leaseMs: number;
  heartbeatMs: number;
  /** Idle poll for due retries and other processes' work (wake-ups make most polls unnecessary). */
  pollMs: number;
  /** On shutdown, how long in-flight turns may finish before their leases are handed back. */
  drainMs: number;
  /**
   * How often the longest-running worker looks for workers that died without
   * stopping, to take their tasks back at once rather than after their lease (others
   * look half as often, in case it dies too); 0 turns it off.
   */
  livenessMs: number;
}

/** The compiled, checked registry an engine runs with. */
export interface Registry {
  agents: ReadonlyMap<string, AgentSpec>;
  tools: ReadonlyMap<string, ToolSpec>;
  limits: EngineLimits;
  retry: RetryPolicy;
  contracts: ContractRegistry;
  policy: PolicyEngine;
  /** The boundary's gates stage (validation); empty until gates are configured. */
  gates: readonly Gate[];
  /** The digest of the gates' config, recorded with every verdict. */
  gatesVersion?: string;
  /** Circuit breakers (validation.breakers); off when null or absent. */
  breakers?: BreakerSettings | null;
  /** The stuck-work sweep (health.stuck); off when null or absent. */
  stuck?: StuckSettings | null;
  /** Shared memory: scope policies and limits. */
  memory: MemorySettings;
  /** Declared direct paths (docs/mesh.md); empty or absent: pure hub and spoke. */
  mesh?: readonly MeshPath[];
  /** MCP servers' health probes (`mcp.servers.<ns>.health`); absent: none. */
  serverProbes?: readonly ServerProbe[];
}

/**
 * A tool server's health probe: stored and shown as `key` (`mcp:<server>`), its result
 * fed to the breaker of each of the server's tools (`tool:<name>`), which is what the
 * tool calls consult (docs/health.md).
 */
export interface ServerProbe {
  key: string;
  /** The breaker keys it feeds: `tool:<server>.<tool>` for each of the server's tools. */
  feeds: readonly string[];
  probe: HealthProbe;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 3, initialMs: 500, maxMs: 60_000, factor: 2, jitter: 'full' };
export const DEFAULT_LIMITS: EngineLimits = { maxDepth: 8, maxTurns: 50, maxReclaims: 5 };
export const DEFAULT_WORKER: WorkerOptions = { concurrency: 8, leaseMs: 30_000, heartbeatMs: 10_000, pollMs: 250, drainMs: 10_000, livenessMs: 1_000 };
export const DEFAULT_TIMEOUT_MS = 120_000;
