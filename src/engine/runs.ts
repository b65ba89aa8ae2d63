import { UnknownAgentError } from '../core/errors.ts';
import type { Json, Run } from '../core/types.ts';
import { TERMINAL_RUN_STATES } from '../core/states.ts';
import type { Store } from '../store/store.ts';
import type { Registry } from './options.ts';

export interface SubmitRequest {
  agent: string;
  input: Json;
  idempotencyKey?: string | null;
  actor?: string;
  /** Whose spend this is, for daily cost ceilings. */
  tenant?: string;
}

/** Starts a run for an agent. An unknown agent is refused before anything is written. */
export async function submitRun(store: Store, registry: Registry, req: SubmitRequest, now: number): Promise<{ run: Run; created: boolean }> {
  const spec = registry.agents.get(req.agent);
  if (!spec) throw new UnknownAgentError(req.agent, [...registry.agents.keys()]);
  return store.runs.create(
    {
      agent: spec.name,
      input: req.input,
      idempotencyKey: req.idempotencyKey ?? null,
      maxAttempts: spec.retry.maxAttempts,
      actor: req.actor ?? 'api',
      ...(req.tenant ? { tenant: req.tenant } : {}),
    },
    now,
  );
}

export function isTerminal(run: Run): boolean {
  return (TERMINAL_RUN_STATES as readonly string[]).includes(run.state);
}

/**
 * Resolves with the run once it is terminal (polls the store; runs may finish in
 * another process) — or as it stands when `timeoutMs` passes or `signal` aborts.
 */
export async function waitForRun(
  store: Store,
  runId: string,
  opts: { pollMs?: number; timeoutMs?: number; signal?: AbortSignal; onPoll?: (run: Run) => void } = {},
): Promise<Run> {
  const pollMs = opts.pollMs ?? 50;
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  for (;;) {
    const run = await store.runs.get(runId);
    if (!run) throw new Error(`run ${runId} not found`);
    if (isTerminal(run)) return run;
    opts.onPoll?.(run);
    if (Date.now() >= deadline || opts.signal?.aborted) return run;
    await sleep(pollMs, opts.signal);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
