import type { Clock, Timer } from '../core/clock.ts';
import type { AgentContext } from '../core/agent.ts';
import { TurnTimeoutError } from '../core/errors.ts';
import type { TurnInput } from '../core/types.ts';
import type { AgentSpec } from './options.ts';

/** A runner told to stop (cancel, shutdown, lease lost): nothing it was doing may commit. */
export class Stopped extends Error {}

/** Calls the agent with its timeout; a stop (cancel, shutdown) aborts the call too. */
export async function callAgent(clock: Clock, spec: AgentSpec, input: TurnInput, stop: AbortSignal, onToken?: AgentContext['onToken'], breakers?: AgentContext['breakers']): Promise<unknown> {
  if (stop.aborted) throw new Stopped();
  const ctl = new AbortController();
  const onStop = () => ctl.abort(new Stopped());
  stop.addEventListener('abort', onStop, { once: true });
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = clock.timer(spec.timeoutMs, () => {
      const err = new TurnTimeoutError(spec.name, spec.timeoutMs);
      ctl.abort(err);
      reject(err);
    });
  });
  const stopped = new Promise<never>((_, reject) => ctl.signal.addEventListener('abort', () => reject(ctl.signal.reason as Error), { once: true }));
  try {
    return await Promise.race([spec.agent.turn(input, { signal: ctl.signal, timeoutMs: spec.timeoutMs, ...(onToken ? { onToken } : {}), ...(breakers ? { breakers } : {}) }), timeout, stopped]);
  } finally {
    timer?.cancel();
    stop.removeEventListener('abort', onStop);
  }
}
