/** The slice of the turn protocol these agents read (docs/agent-protocol.md). */
export interface Fact {
  id: string;
  scope: string;
  key: string;
  version: number;
  value: unknown;
  text: string | null;
  writtenBy: { agent: string | null; run: string | null };
}

export interface Claim {
  key: string;
  value: unknown;
  confidence?: number;
  evidence: Array<{ kind: 'quote' | 'url' | 'fact' | 'effect'; ref: string }>;
}

export interface Turn {
  task: { runId: string; turn: number; input: Record<string, unknown> };
  results: Array<{ type: string; id?: string; ok: boolean; value?: unknown; error?: { code: string; message: string } }>;
  /** Earlier turns of this task: what each asked for and got. */
  history?: Array<{ turn: number; actions: Array<Record<string, unknown>> }>;
  /** Synthesis of the departments' claims (docs/synthesis.md). */
  brief?: {
    id?: string;
    parts: Array<{ key: string; status: string; value: unknown; from: Array<{ agent: string }> }>;
    conflicts: Array<{ key: string; candidates: Array<{ value: unknown }>; steps: Array<{ strategy: string; outcome?: string }>; decision: { value: unknown; strategy: string } | null }>;
  };
  memory?: Fact[];
}
