import type { Json } from '../core/types.ts';
import type { Registry } from '../engine/options.ts';

/** What the outside world may know about an agent: for A2A Agent Cards and MCP's `list_agents`. */
export interface AgentInfo {
  name: string;
  description: string | null;
  kind: string;
  /** Input and output contract ids, with their JSON Schemas, when the agent has them. */
  input: { id: string; schema: Json } | null;
  output: { id: string; schema: Json } | null;
}

/** Read per request, so a config reload applies at once. */
export type AgentDirectory = () => readonly AgentInfo[];

/** The directory of a registry: every agent, in config order. */
export function directoryFromConfig(config: { registry: Registry }): AgentInfo[] {
  const { registry } = config;
  const contract = (id: string | null) => {
    if (!id) return null;
    const c = registry.contracts.get(id);
    return c ? { id, schema: c.schema } : null;
  };
  return [...registry.agents.values()].map((spec) => ({
    name: spec.name,
    description: spec.description,
    kind: spec.agent.kind,
    input: contract(spec.input),
    output: contract(spec.output),
  }));
}
