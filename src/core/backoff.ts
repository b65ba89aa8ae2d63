/** Exponential backoff with jitter; only retryable errors are retried. */
export interface RetryPolicy {
  /** Attempts per turn, including the first. */
  maxAttempts: number;
  initialMs: number;
  maxMs: number;
  factor: number;
  /** `full`: a uniform delay in [0, backoff]; `none`: exactly the backoff. */
  jitter: 'full' | 'none';
}

/**
 * Delay before the next attempt after `failedAttempts` failures:
 * min(maxMs, initialMs · factor^(failedAttempts−1)), then full jitter if asked.
 */
export function backoffMs(policy: RetryPolicy, failedAttempts: number, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxMs, policy.initialMs * Math.pow(policy.factor, Math.max(0, failedAttempts - 1)));
  return policy.jitter === 'full' ? Math.floor(random() * exp) : Math.floor(exp);
}
