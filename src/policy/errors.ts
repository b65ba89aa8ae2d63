import { SpineError } from '../core/errors.ts';

/** A crossing refused by policy (or blocked by a gate). Delivered to the agent as the action's result. */
export class PolicyDeniedError extends SpineError {
  readonly ruleId: string | null;
  constructor(ruleId: string | null, reason: string) {
    super('POLICY_DENIED', `refused by ${ruleId ?? 'policy'}: ${reason}`, { details: { ruleId } });
    this.ruleId = ruleId;
  }
}

/** A rate limit with onExceeded: fail. */
export class RateLimitedError extends SpineError {
  readonly ruleId: string;
  readonly retryAt: number;
  constructor(ruleId: string, retryAt: number) {
    super('RATE_LIMITED', `rate limit ${ruleId} exceeded; next token at ${new Date(retryAt).toISOString()}`, { details: { ruleId, retryAt } });
    this.ruleId = ruleId;
    this.retryAt = retryAt;
  }
}

/** A cost ceiling was reached: spend stops and the task escalates to a human (or, for a heartbeat's `maxCostUsd`, fails). */
export class BudgetExceededError extends SpineError {
  readonly ruleId: string;
  constructor(ruleId: string, key: string, then: 'escalated' | 'stopped' = 'escalated') {
    super('BUDGET_EXCEEDED', `cost ceiling ${ruleId} reached (${key}); ${then === 'escalated' ? 'escalated to a human' : 'the turn is stopped'}`, { details: { ruleId, key } });
    this.ruleId = ruleId;
  }
}
