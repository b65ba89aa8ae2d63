import { totalUsage, type RunUsage } from '../core/usage.ts';
import type { Store } from '../store/store.ts';

/** A run's usage: each turn's tokens and cost, their sum, and its reserved and settled spend (`runs show`, `GET /v1/runs/{id}`). */
export async function runUsage(store: Store, runId: string): Promise<RunUsage> {
  const [turns, spend] = await Promise.all([store.tasks.usage({ runId }), store.limits.runSpend(runId)]);
  return { turns, total: totalUsage(turns), spend };
}
