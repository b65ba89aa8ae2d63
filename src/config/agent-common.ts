import { z } from 'zod';

/** Config pieces shared by every agent kind (each kind's schema lives beside its adapter). */

const positiveInt = z.number().int().positive();

export const retrySchema = z.strictObject({
  maxAttempts: positiveInt.max(100).optional(),
  initialMs: z.number().int().nonnegative().optional(),
  maxMs: z.number().int().nonnegative().optional(),
  factor: z.number().min(1).optional(),
  jitter: z.enum(['full', 'none']).optional(),
});

const CONTRACT_ID = /^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*@[1-9][0-9]*$/;
export const contractId = z.string().regex(CONTRACT_ID, 'contract ids are name@version, e.g. research.request@2');

/** Estimated spend, reserved against cost ceilings before the crossing happens. */
export const cost = z.strictObject({
  usd: z.number().nonnegative().optional(),
  tokens: z.number().int().nonnegative().optional(),
});

export const allowDeny = z.union([
  z.array(z.string().min(1)),
  z.strictObject({ allow: z.array(z.string().min(1)).optional(), deny: z.array(z.string().min(1)).optional() }),
]);

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
    })
    .optional(),
  /** Estimated spend of one turn (e.g. a model call), reserved against cost ceilings. */
  cost: cost.optional(),
  /** When retries run out: dead-letter (default) or escalate to a human. */
  onExhausted: z.enum(['dead', 'escalate']).optional(),
};
