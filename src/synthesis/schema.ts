import { z } from 'zod';
import { JOIN_MODE_PATTERN, JOIN_ON_FAILURE } from '../core/join.ts';

/** A join policy (core/join.ts), on an agent, on a handoff, or on a turn's whole batch of handoffs. */
export const joinPolicySchema = z.strictObject({
  mode: z.string().regex(JOIN_MODE_PATTERN, 'must be all, first, race or quorum:N (N ≥ 1)'),
  onChildFailure: z.enum(JOIN_ON_FAILURE).optional(),
  deadlineMs: z.number().int().positive().optional(),
});

const comparator = z.union([
  z.enum(['equal', 'set']),
  z.strictObject({ numeric: z.strictObject({ tolerance: z.number().nonnegative() }) }),
  z.strictObject({ enum: z.array(z.unknown()).min(1) }),
]);

/** A strategy by name, or with its settings (`priority` needs `order`). Names are checked when compiled, so an unknown one is named. */
const strategyRef = z.union([
  z.string().min(1),
  z.looseObject({ strategy: z.string().min(1) }),
]);

const resolveRule = z.strictObject({
  /** Key pattern: `price.*`, `*`. */
  match: z.string().min(1),
  strategy: z.string().min(1).optional(),
  chain: z.array(strategyRef).min(1).optional(),
  order: z.array(z.string().min(1)).optional(),
  min: z.number().min(0).max(1).optional(),
  agent: z.string().min(1).optional(),
  approvers: z.string().min(1).optional(),
  expiresInMs: z.number().int().positive().optional(),
});

/** An agent's synthesis of its joins: how claims compare per key pattern, which keys it expects, and how conflicts resolve. */
export const synthesisSchema = z.strictObject({
  compare: z.record(z.string().min(1), comparator).optional(),
  expect: z.array(z.string().min(1)).optional(),
  resolve: z.array(resolveRule).optional(),
  /** The judge agent `judge` strategies dispatch to unless they name one. */
  judge: z.string().min(1).optional(),
  /** Where the hub sends each finished brief (an outbound message crossing the boundary's deliver stage). */
  deliver: z.strictObject({ channel: z.string().min(1), account: z.string().min(1).optional(), to: z.string().min(1), thread: z.string().min(1).optional() }).optional(),
  /** Defaults of `human` strategies: who approves, and when the approval expires. */
  human: z.strictObject({ approvers: z.string().min(1).optional(), expiresInMs: z.number().int().positive().optional() }).optional(),
});

export type SynthesisConfig = z.infer<typeof synthesisSchema>;
