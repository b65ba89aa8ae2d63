import type { Agent } from '../core/agent.ts';
import { AgentProtocolError } from '../core/errors.ts';
import type { TurnInput } from '../core/types.ts';
import type { EmbedderSettings } from './settings.ts';

/**
 * Embedding for vector search: the configured embedder agent (any kind: function,
 * command, http, llm…) is given one turn whose task input is `{texts}` and must answer
 * the output `{vectors}`, one per text, each of the configured dimensions. The core
 * only dispatches it; no model call lives here. Like a validator agent's verdict
 * (validation/kinds.ts), it is a direct turn, not a durable task: a failed embedding
 * is simply tried again (the backfill queue) or fails the one search that needed it.
 */

/** Texts in, one vector per text out. */
export type Embed = (texts: readonly string[], signal?: AbortSignal) => Promise<number[][]>;

export interface EmbedderAgent {
  agent: Agent;
  timeoutMs: number;
}

export function embedderOf(settings: EmbedderSettings | null, agentOf: (name: string) => EmbedderAgent | undefined): Embed | null {
  if (!settings) return null;
  return async (texts, signal) => {
    if (texts.length === 0) return [];
    const a = agentOf(settings.agent);
    if (!a) throw new AgentProtocolError(settings.agent, 'the memory embedder agent is not configured');
    const input: TurnInput = {
      protocol: 'spine.turn/1',
      task: { id: `embed:${settings.agent}`, runId: '', agent: settings.agent, parentId: null, depth: 0, input: { texts: [...texts] }, turn: 1, attempt: 1, lastError: null },
      session: null,
      history: [],
      results: [],
      memory: [],
      grants: { tools: [], agents: [] },
    };
    // An agent's signal fires on timeout or cancel (core/agent.ts), so the timeout is ours to add.
    const timeout = AbortSignal.timeout(a.timeoutMs);
    return embeddingsOf(settings, texts.length, await a.agent.turn(input, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout, timeoutMs: a.timeoutMs }));
  };
}

/** The embedder's contract: `{output: {vectors: number[][]}}`, `count` vectors of `dimensions` finite numbers. */
export function embeddingsOf(settings: EmbedderSettings, count: number, raw: unknown): number[][] {
  const out = raw && typeof raw === 'object' && 'output' in raw ? (raw).output : undefined;
  const vectors = out && typeof out === 'object' && 'vectors' in out ? (out).vectors : undefined;
  const fail = (why: string) => new AgentProtocolError(settings.agent, `embedder output ${why}; expected {vectors: number[][]}, ${count} of ${settings.dimensions} numbers`);
  if (!Array.isArray(vectors)) throw fail('has no vectors array');
  if (vectors.length !== count) throw fail(`has ${vectors.length} vectors for ${count} texts`);
  return vectors.map((v: unknown, i) => {
    if (!Array.isArray(v) || v.length !== settings.dimensions) throw fail(`vectors[${i}] is not ${settings.dimensions} numbers long`);
    if (!v.every((x) => typeof x === 'number' && Number.isFinite(x))) throw fail(`vectors[${i}] holds something other than finite numbers`);
    return v as number[];
  });
}
