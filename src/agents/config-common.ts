import { z } from 'zod';
import { allowDeny, contractId, cost, healthProbeSchema, retrySchema } from '../config/fields.ts';
import { joinPolicySchema, synthesisSchema } from '../synthesis/schema.ts';
import { memoryGrantsSchema, recallSchema } from '../memory/settings.ts';

/** Config pieces shared by every agent kind (each kind's schema lives beside its adapter). */

const positiveInt = z.number().int().positive();

export { healthProbeSchema, type HealthProbeConfig } from '../config/fields.ts';

/** Fields every agent kind accepts. */
export const agentCommon = {
  description: z.string().optional(),
  /** Per-turn timeout. */
  timeoutMs: positiveInt.optional(),
  retry: retrySchema.optional(),
  /** Contracts the agent's input and output must satisfy. */
  input: contractId.optional(),
  output: contractId.optional(),
  /** Tools are denied unless granted here; `deny` wins over `allow`; `crm.*` covers a namespace. */
  grants: z
    .strictObject({
      tools: allowDeny.optional(),
      /** Agents it may hand off to (all when omitted). */
      handoffs: allowDeny.optional(),
      /** Shared memory scopes it may read and write (denied by default; `self`, `run/*`, `session/*` are its own). */
      memory: memoryGrantsSchema.optional(),
      /** Accept tool patterns that match no tool in the catalog yet (they are refused otherwise). */
      allowUnmatched: z.boolean().optional(),
    })
    .optional(),
  /** Shared memory searched before each turn, handed in the turn's `memory` (docs/memory.md). */
  recall: z.array(recallSchema).max(8).optional(),
  /** Estimated spend of one turn (e.g. a model call), reserved against cost ceilings. */
  cost: cost.optional(),
  /** When retries run out: dead-letter (default) or escalate to a human. */
  onExhausted: z.enum(['dead', 'escalate']).optional(),
  /** A probe the workers run on a schedule, feeding the agent's breaker (docs/health.md). */
  health: healthProbeSchema.optional(),
  /** The agent that takes over a task whose attempts are spent or whose breaker is open (docs/validation.md). */
  fallback: z.string().min(1).optional(),
  /** How its batches of handoffs join: {mode: all | first | race | quorum:N, onChildFailure?, deadlineMs?}. */
  join: joinPolicySchema.optional(),
  /** Synthesis of its joins: comparators per key pattern, expected keys, resolution chains (docs/synthesis.md). */
  synthesis: synthesisSchema.optional(),
};
