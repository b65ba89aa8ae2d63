import type { Clock } from '../core/clock.ts';
import { InvalidInputError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { PollLoop } from '../core/poll-loop.ts';
import type { Store } from '../store/store.ts';
import { ConsoleSpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { AuditTraces } from './traces.ts';

const PAGE = 500;

/**
 * Tracing on: the audit log from this process's start, folded into spans and handed
 * to the exporter, read in pages every `pollMs` (default 500 ms). It is not woken per
 * commit: spans are not needed within milliseconds, and a reader woken by every commit
 * costs the hot path a third of its throughput (bench/observability.ts).
 * Turn it on in one process per store (each exporting process exports every run).
 */
export function startTraceFeed(opts: { store: Store; clock: Clock; log: Logger; exporter: SpanExporter; fromSeq: number; pollMs?: number }): { stop(): Promise<void> } {
  const traces = new AuditTraces(opts.exporter);
  let cursor = opts.fromSeq;
  const loop = new PollLoop({
    name: 'trace feed',
    clock: opts.clock,
    log: opts.log,
    pass: async () => {
      const page = await opts.store.audit.list({ afterSeq: cursor, limit: PAGE });
      traces.fold(page);
      if (page.length > 0) {
        cursor = page.at(-1)!.seq;
        // One export per pass: the spans that ended in it.
        await traces.flush();
      }
      return page.length === PAGE ? 0 : (opts.pollMs ?? 500);
    },
  });
  loop.start();
  return {
    async stop() {
      await loop.stop();
      await traces.shutdown();
    },
  };
}

/**
 * The exporter the standard environment asks for: OTEL_TRACES_EXPORTER=console (or
 * SPINE_TRACES=console). Off by default; `otlp` needs an OTLP exporter package, which
 * Spine does not bundle yet, so it is refused with a clear message.
 */
export function exporterFromEnv(env: NodeJS.ProcessEnv): SpanExporter | null {
  const want = (env.SPINE_TRACES ?? env.OTEL_TRACES_EXPORTER ?? 'none').trim();
  if (want === 'none' || want === '') return null;
  if (want === 'console') return new ConsoleSpanExporter();
  throw new InvalidInputError('OTEL_TRACES_EXPORTER', `"${want}" is not supported yet (console or none); see docs/observability.md`);
}
