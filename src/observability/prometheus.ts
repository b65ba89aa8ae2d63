import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Labels, Meter } from '../core/meter.ts';
import { DURATION_BUCKETS } from '../core/meter.ts';

/**
 * The meter port over prom-client: one registry per process, rendered in the
 * Prometheus text format. Process metrics (CPU, memory, event-loop lag) come with it.
 */
export class PrometheusMeter implements Meter {
  readonly registry = new Registry();
  private readonly collectors: Array<() => Promise<void> | void> = [];

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: 'spine_' });
      // Gauges named like counters (`promtool check metrics` refuses them); the handle counts say little anyway.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(`spine_${name}`);
    }
  }

  counter(name: string, help: string, labelNames: readonly string[] = []) {
    const c = new Counter({ name, help, labelNames, registers: [this.registry] });
    return { inc: (labels?: Labels, by = 1) => (labels ? c.inc(labels, by) : c.inc(by)) };
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []) {
    const g = new Gauge({ name, help, labelNames, registers: [this.registry] });
    return { set: (value: number, labels?: Labels) => (labels ? g.set(labels, value) : g.set(value)), reset: () => g.reset() };
  }

  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets: readonly number[] = DURATION_BUCKETS) {
    const h = new Histogram({ name, help, labelNames, buckets: [...buckets], registers: [this.registry] });
    return { observe: (value: number, labels?: Labels) => (labels ? h.observe(labels, value) : h.observe(value)) };
  }

  onCollect(fn: () => Promise<void> | void): void {
    this.collectors.push(fn);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Refreshes the store-read gauges, then renders every metric. A failed refresh leaves the last values. */
  async render(onError?: (err: unknown) => void): Promise<string> {
    for (const fn of this.collectors) {
      try {
        await fn();
      } catch (err) {
        onError?.(err);
      }
    }
    return this.registry.metrics();
  }
}
