import type { Agent, HealthProbe, ToolFunction } from '../core/agent.ts';
import { ContractRegistry } from '../contracts/registry.ts';
import { PolicyEngine, type Grants } from '../policy/evaluate.ts';
import { EMPTY_POLICY, type CompiledPolicy } from '../policy/rules.ts';
import type { Gate } from '../validation/gate.ts';
import type { BreakerSettings } from '../validation/breakers.ts';
import type { StuckSettings } from '../validation/stuck.ts';
import type { JoinSpec } from '../core/join.ts';
import type { SynthesisSpec } from '../synthesis/config.ts';
import type { MeshPath } from '../core/mesh.ts';
import { DEFAULT_MEMORY, type MemorySettings, type RecallSpec } from '../memory/settings.ts';
import { DEFAULT_LIMITS, DEFAULT_RETRY, DEFAULT_TIMEOUT_MS, type AgentSpec, type EngineLimits, type Registry, type RetryPolicy, type ServerProbe, type ToolSpec } from './options.ts';

/** Agent settings for building a registry in code; everything but the agent has a default. */
export interface AgentInit {
  agent: Agent;
  description?: string;
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  input?: string | null;
  output?: string | null;
  /** Default: no tools, handoffs to any agent. */
  grants?: Partial<Grants>;
  cost?: AgentSpec['cost'];
  onExhausted?: AgentSpec['onExhausted'];
  fallback?: string | null;
  probe?: HealthProbe | null;
  join?: JoinSpec | null;
  synthesis?: SynthesisSpec | null;
  recall?: readonly RecallSpec[];
}

export interface ToolInit {
  run: ToolFunction;
  description?: string;
  input?: string | null;
  output?: string | null;
  sideEffect?: ToolSpec['sideEffect'];
  cost?: ToolSpec['cost'];
  /** The tool's input as a JSON Schema (e.g. from an MCP server), for the catalog shown to LLM agents. */
  inputSchema?: ToolSpec['inputSchema'];
}

export const NO_GRANTS: Grants = { tools: { allow: [], deny: [] }, handoffs: null };

/** Builds the checked registry the engine runs with (the config compiler and tests both use it). */
export function createRegistry(parts: {
  agents: Record<string, AgentInit>;
  tools?: Record<string, ToolInit>;
  limits?: Partial<EngineLimits>;
  retry?: Partial<RetryPolicy>;
  contracts?: ContractRegistry;
  policy?: CompiledPolicy;
  gates?: readonly Gate[];
  gatesVersion?: string;
  breakers?: BreakerSettings | null;
  stuck?: StuckSettings | null;
  memory?: MemorySettings;
  mesh?: readonly MeshPath[];
  serverProbes?: readonly ServerProbe[];
}): Registry {
  const retry: RetryPolicy = { ...DEFAULT_RETRY, ...parts.retry };
  const agents = new Map<string, AgentSpec>();
  const grants = new Map<string, Grants>();
  for (const [name, a] of Object.entries(parts.agents)) {
    const g: Grants = { ...NO_GRANTS, ...a.grants };
    grants.set(name, g);
    agents.set(name, {
      name,
      description: a.description ?? null,
      agent: a.agent,
      timeoutMs: a.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      retry: { ...retry, ...a.retry },
      input: a.input ?? null,
      output: a.output ?? null,
      grants: g,
      cost: a.cost ?? null,
      onExhausted: a.onExhausted ?? 'dead',
      fallback: a.fallback ?? null,
      probe: a.probe ?? null,
      join: a.join ?? null,
      synthesis: a.synthesis ?? null,
      recall: a.recall ?? [],
    });
  }
  const tools = new Map<string, ToolSpec>();
  for (const [name, t] of Object.entries(parts.tools ?? {})) {
    tools.set(name, {
      name,
      run: t.run,
      ...(t.description === undefined ? {} : { description: t.description }),
      ...(t.inputSchema === undefined ? {} : { inputSchema: t.inputSchema }),
      input: t.input ?? null,
      output: t.output ?? null,
      sideEffect: t.sideEffect ?? 'external',
      cost: t.cost ?? null,
    });
  }
  return {
    agents,
    tools,
    limits: { ...DEFAULT_LIMITS, ...parts.limits },
    retry,
    contracts: parts.contracts ?? new ContractRegistry(),
    policy: new PolicyEngine(parts.policy ?? EMPTY_POLICY, grants, parts.memory?.durableWritesFrom),
    gates: parts.gates ?? [],
    ...(parts.gatesVersion ? { gatesVersion: parts.gatesVersion } : {}),
    ...(parts.breakers ? { breakers: parts.breakers } : {}),
    ...(parts.stuck ? { stuck: parts.stuck } : {}),
    memory: parts.memory ?? DEFAULT_MEMORY,
    ...(parts.mesh?.length ? { mesh: parts.mesh } : {}),
    ...(parts.serverProbes?.length ? { serverProbes: parts.serverProbes } : {}),
  };
}
