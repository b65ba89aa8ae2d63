/**
 * The meter port: counters, gauges and histograms by name and labels. The engine and
 * gateway speak only this; the Prometheus adapter (observability/prometheus.ts) is
 * wired by the runtime, and without it every instrument is a no-op.
 */
export type Labels = Readonly<Record<string, string>>;

export interface Counter {
  inc(labels?: Labels, by?: number): void;
}

export interface Gauge {
  set(value: number, labels?: Labels): void;
  /** Drops every labelled value (a gauge re-read whole at each scrape). */
  reset(): void;
}

export interface Histogram {
  /** A value in the instrument's unit (seconds for durations). */
  observe(value: number, labels?: Labels): void;
}

export interface Meter {
  counter(name: string, help: string, labelNames?: readonly string[]): Counter;
  gauge(name: string, help: string, labelNames?: readonly string[]): Gauge;
  histogram(name: string, help: string, labelNames?: readonly string[], buckets?: readonly number[]): Histogram;
  /** Runs before every scrape: gauges read from the store are refreshed here. */
  onCollect(fn: () => Promise<void> | void): void;
}

const noop = { inc() {}, set() {}, reset() {}, observe() {} };

export const noopMeter: Meter = {
  counter: () => noop,
  gauge: () => noop,
  histogram: () => noop,
  onCollect() {},
};

/** Duration buckets in seconds, 1 ms to 60 s. */
export const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

/** A meter that can be scraped: what /metrics serves. */
export interface MetricsExposition {
  readonly contentType: string;
  render(): Promise<string>;
}
