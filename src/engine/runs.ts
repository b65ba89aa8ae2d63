import { systemClock, type Clock } from '../core/clock.ts';
import { silentLogger } from '../core/log.ts';
import { PollLoop } from '../core/poll-loop.ts';
import type { Run } from '../core/types.ts';
import { TERMINAL_RUN_STATES } from '../core/states.ts';
import type { Store } from '../store/store.ts';

export function isTerminal(run: Run): boolean {
  return (TERMINAL_RUN_STATES as readonly string[]).includes(run.state);
}

/**
 * Resolves with the run once it is terminal — or as it stands when `timeoutMs` passes
 * or `signal` aborts. Reads the run when this process commits (in-process workers
 * finish it) and every `pollMs` (runs may finish in another process).
 */
export function waitForRun(
  store: Store,
  runId: string,
  opts: { pollMs?: number; timeoutMs?: number; signal?: AbortSignal; onPoll?: (run: Run) => void; clock?: Clock } = {},
): Promise<Run> {
  const pollMs = opts.pollMs ?? 50;
  const clock = opts.clock ?? systemClock;
  const deadline = opts.timeoutMs === undefined ? Infinity : clock.now() + opts.timeoutMs;
  const { signal } = opts;
  return new Promise<Run>((resolve, reject) => {
    let settled = false;
    const finish = (outcome: { run: Run } | { error: unknown }) => {
      if (settled) return;
      settled = true;
      unsubscribe();
      signal?.removeEventListener('abort', onAbort);
      void loop.stop();
      if ('run' in outcome) resolve(outcome.run);
      else reject(outcome.error instanceof Error ? outcome.error : new Error(String(outcome.error)));
    };
    const loop = new PollLoop({
      name: `wait for ${runId}`,
      clock,
      log: silentLogger,
      pass: async () => {
        if (settled) return pollMs;
        let run: Run | null;
        try {
          run = await store.runs.get(runId);
        } catch (error) {
          finish({ error });
          return pollMs;
        }
        if (!run) finish({ error: new Error(`run ${runId} not found`) });
        else if (isTerminal(run)) finish({ run });
        else {
          opts.onPoll?.(run);
          if (clock.now() >= deadline || signal?.aborted) finish({ run });
        }
        return Math.min(pollMs, Math.max(0, deadline - clock.now()));
      },
    });
    const onAbort = () => loop.wake();
    const unsubscribe = store.onCommitted(() => loop.wake());
    signal?.addEventListener('abort', onAbort, { once: true });
    loop.start();
  });
}
