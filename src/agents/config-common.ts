import { z } from 'zod';
import { allowDeny, contractId, cost, retrySchema } from '../config/fields.ts';

/** Config pieces shared by every agent kind (each kind's schema lives beside its adapter). */

const positiveInt = z.number().int().positive();

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
      /** Accept tool patterns that match no tool in the catalog yet (they are refused otherwise). */
      allowUnmatched: z.boolean().optional(),
    })
    .optional(),
  /** Estimated spend of one turn (e.g. a model call), reserved against cost ceilings. */
  cost: cost.optional(),
  /** When retries run out: dead-letter (default) or escalate to a human. */
  onExhausted: z.enum(['dead', 'escalate']).optional(),
  /** The agent that takes over a task whose attempts are spent or whose breaker is open (docs/validation.md). */
  fallback: z.string().min(1).optional(),
};
