import type { Json, TurnInput } from './types.ts';

/** What every agent kind gets besides the turn: a signal that fires on timeout or cancel. */
export interface AgentContext {
  signal: AbortSignal;
  timeoutMs: number;
  /** Streamed model output, as it arrives (live view only; the turn's answer is what counts). */
  onToken?: (chunk: { text: string; provider: string; model: string }) => void;
  /** The shared circuit breakers, when configured: an adapter with endpoints of its own (an LLM agent's models) asks and reports per endpoint. */
  breakers?: EndpointBreakers;
}

/**
 * The breakers as an adapter sees them (validation/breakers.ts's BreakerBoard fits):
 * `admit` may claim the half-open probe; `record` reports one call's outcome.
 */
export interface EndpointBreakers {
  admit(key: string): Promise<{ ok: true; probe: boolean } | { ok: false; retryAt: number }>;
  record(key: string, ok: boolean, error?: string | null): Promise<void>;
}

/**
 * A health probe (an agent's `health`): a cheap check without a model turn. `check`
 * resolves with a short detail when healthy and throws when not.
 */
export interface HealthProbe {
  /** `ping` (run a command), `http` (GET a URL) or `handshake` (fetch the A2A Agent Card; ping an MCP server). */
  kind: 'ping' | 'http' | 'handshake';
  everyMs: number;
  timeoutMs: number;
  check(signal: AbortSignal): Promise<string>;
}

/**
 * An agent adapter: one stateless turn. It returns the agent's raw answer; the
 * engine validates it against the turn protocol, so adapters stay thin.
 */
export interface Agent {
  readonly kind: string;
  turn(input: TurnInput, ctx: AgentContext): Promise<unknown>;
}

/** Signature of an in-process agent (kind `function`). */
export type AgentFunction = (input: TurnInput, ctx: AgentContext) => unknown;

/** Context handed to a tool: the idempotency key is its place in the run. */
export interface ToolContext {
  idempotencyKey: string;
  /** True when an earlier execution of this same effect may have happened (crash before it was recorded). */
  maybeRepeated: boolean;
  runId: string;
  taskId: string;
  agent: string;
  signal: AbortSignal;
}

export type ToolFunction = (input: Json, ctx: ToolContext) => unknown;

export interface ToolDefinition {
  name: string;
  description?: string;
  run: ToolFunction;
}
