import type { FieldIssue } from '../core/errors.ts';
import type { Agent } from './agent.ts';

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
}

export type AgentFactory<C> = (cfg: C, ctx: AgentKindContext) => Agent | null | Promise<Agent | null>;
