import { z } from 'zod';
import { JOIN_MODE_PATTERN, JOIN_ON_FAILURE } from '../core/join.ts';

/** A join policy (core/join.ts), on an agent, on a handoff, or on a turn's whole batch of handoffs. */
export const joinPolicySchema = z.strictObject({
  mode: z.string().regex(JOIN_MODE_PATTERN, 'must be all, first, race or quorum:N (N ≥ 1)'),
  onChildFailure: z.enum(JOIN_ON_FAILURE).optional(),
  deadlineMs: z.number().int().positive().optional(),
});
