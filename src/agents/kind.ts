import type { FieldIssue } from '../core/errors.ts';
import type { Json } from '../core/types.ts';

/** A read-only view of the rest of the config, for adapters that describe tools and contracts to a model. Lazy: tools compile after agents. */
export interface AgentCatalog {
  contractSchema(id: string): Json | undefined;
  tool(name: string): { description?: string | undefined; input: string | null } | undefined;
  toolNames(): Iterable<string>;
  agent(name: string): { description?: string | undefined; input: string | null } | undefined;
}
import type { Agent } from '../core/agent.ts';

/** What an agent kind's factory gets besides its own config. */
export interface AgentKindContext {
  name: string;
  /** Folder of the config file: relative paths resolve against it. */
  dir: string;
  /** Path of this agent's config, e.g. `agents.writer`, for error messages. */
  path: string;
  /** Problems go here (each naming its field); return null when the agent cannot be built. */
  issues: FieldIssue[];
  /** Names of all configured agents (for handoff tools offered to models). */
  agentNames: readonly string[];
  catalog?: AgentCatalog;
}

export type AgentFactory<C> = (cfg: C, ctx: AgentKindContext) => Agent | null | Promise<Agent | null>;
