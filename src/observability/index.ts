import type { Clock } from '../core/clock.ts';
import type { MetricsExposition } from '../core/meter.ts';
import type { Store } from '../store/store.ts';
import { PrometheusMeter } from './prometheus.ts';
import { registerSpineMetrics } from './spine-metrics.ts';

/** A process's metrics: Spine's instruments on a Prometheus registry (loaded on first use by the runtime). */
export function createProcessMetrics(deps: { store: Store; clock: Clock; subscribers?: () => number; fromSeq?: number; onError?: (err: unknown) => void }): MetricsExposition {
  const meter = new PrometheusMeter();
  registerSpineMetrics(meter, deps);
  return { contentType: meter.contentType, render: () => meter.render(deps.onError) };
}
