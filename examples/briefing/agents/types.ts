/** The slice of the turn protocol these example agents read (docs/agent-protocol.md). */
export interface Turn {
  task: { runId: string; input: { text?: string; topic?: string }; turn: number };
  results: Array<{ type: string; id?: string; ok: boolean; value?: unknown; error?: { code: string; message: string } }>;
  /** The brief of the handoffs just joined, when the agent declares synthesis (docs/synthesis.md). */
  brief?: { parts: Array<{ key: string; value: unknown }>; conflicts: Array<{ key: string; decision: { value: unknown } | null }> };
  /** Facts recalled from shared memory for this turn (the agent's `recall` in the config), to cite. */
  memory?: Array<{ id: string; scope: string; key: string; version: number; text: string | null; writtenBy: { run: string | null } }>;
}
