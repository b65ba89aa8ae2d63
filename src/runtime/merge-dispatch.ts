import { SpineError } from '../core/errors.ts';
import type { Intake } from '../intake/intake.ts';
import { mergeEnvelope, type MergeDispatch } from '../memory/merge-queue.ts';

/**
 * How the merge queue hands a conflict to its merge agent: through intake, like every
 * submission, as an envelope addressed to the agent (deduplicated by the conflict, so
 * a repeat after a crash finds the first run), in an isolated session.
 */
export function intakeDispatch(intake: Pick<Intake, 'accept'>): MergeDispatch {
  return async (req) => {
    const r = await intake.accept(mergeEnvelope(req.idempotencyKey, req.input), { actor: 'memory', agent: req.agent, tenant: req.tenant, session: 'isolated' });
    if (!r.run) throw SpineError.fromInfo(r.envelope.error ?? { code: 'UNROUTABLE', message: `merge envelope ${r.envelope.id} started no run`, retryable: false });
    return r.run.id;
  };
}
