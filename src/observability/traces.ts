import { createHash } from 'node:crypto';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { AuditEvent } from '../store/audit.ts';

/**
 * OpenTelemetry traces built from the audit log (docs/observability.md, "Traces"):
 *
 *   spine.run <agent>                     one root per run
 *     invoke_agent <agent>                a turn of the root task (start → commit)
 *       execute_tool <tool>               an effect of that turn
 *       invoke_agent <child agent>        a handoff's child turns: children of the turn that handed off
 *
 * Span and trace ids are derived from the durable ids (run, task, the seq of the
 * event that started the span), not drawn at random: a run has one trace and one
 * root whichever processes ran its turns, and a turn cut by a SIGKILL (its lease
 * reclaimed) ends as an error span in the same tree, with the retried turn beside it.
 * Spans are emitted when they end, with their recorded start and end times.
 */

const str = (v: unknown) => (typeof v === 'string' ? v : '');
const hex = (s: string, n: number) => createHash('sha256').update(s).digest('hex').slice(0, n);
export const traceIdOf = (runId: string) => hex(`spine-trace:${runId}`, 32);
export const runSpanIdOf = (runId: string) => hex(`spine-run:${runId}`, 16);
const spanIdOf = (what: string) => hex(`spine-span:${what}`, 16);

interface Open {
  name: string;
  spanId: string;
  parentId: string | null;
  start: number;
  kind: SpanKind;
  attributes: Attributes;
}

/** The id generator hands out the ids the builder chose for the next span. */
class ChosenIds {
  next: { traceId: string; spanId: string } | null = null;
  generateTraceId(): string {
    return this.next?.traceId ?? hex(String(Math.random()), 32);
  }
  generateSpanId(): string {
    return this.next?.spanId ?? hex(String(Math.random()), 16);
  }
}

export class AuditTraces {
  private readonly ids = new ChosenIds();
  private readonly provider: BasicTracerProvider;
  private readonly tracer;
  private readonly runs = new Map<string, Open>();
  /** The span a task's turns hang under (its run's span, or the parent turn that handed off). */
  private readonly taskParent = new Map<string, string>();
  /** The turn in progress per task. */
  private readonly turns = new Map<string, Open & { runId: string }>();
  private readonly effects = new Map<string, Open & { runId: string }>();
  private readonly runOf = new Map<string, string>();

  constructor(exporter: SpanExporter, opts: { serviceName?: string } = {}) {
    // Batched: spans leave in the background, not one export call each.
    this.provider = new BasicTracerProvider({ idGenerator: this.ids, spanProcessors: [new BatchSpanProcessor(exporter)] });
    this.tracer = this.provider.getTracer('spine', '0.1.0');
    void opts;
  }

  /** Folds audit events, in seq order; spans are exported as they end. */
  fold(events: readonly AuditEvent[]): void {
    for (const e of events) this.one(e);
  }

  /** Hands every ended span to the exporter. */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  async shutdown(): Promise<void> {
    await this.provider.forceFlush();
    await this.provider.shutdown();
  }

  private one(e: AuditEvent): void {
    const d = (e.data ?? {}) as Record<string, unknown>;
    const run = e.runId ?? (e.taskId ? this.runOf.get(e.taskId) : undefined) ?? null;
    const task = e.taskId ?? null;
    if (task && run) this.runOf.set(task, run);
    switch (e.kind) {
      case 'run.created':
        if (!run) return;
        this.runs.set(run, { name: `spine.run ${e.agent ?? ''}`.trim(), spanId: runSpanIdOf(run), parentId: null, start: e.at, kind: SpanKind.INTERNAL, attributes: { 'spine.run.id': run, 'gen_ai.agent.name': e.agent ?? '' } });
        return;
      case 'run.succeeded':
      case 'run.failed':
      case 'run.cancelled': {
        if (!run) return;
        const open = this.runs.get(run);
        this.runs.delete(run);
        if (open) this.emit(run, open, e.at, e.kind === 'run.succeeded' ? null : e.kind.slice(4));
        return;
      }
      case 'task.created':
        if (task && run && !d.parent) this.taskParent.set(task, runSpanIdOf(run));
        return;
      case 'action.handoff': {
        // The child's turns hang under the turn that handed off.
        const parentTurn = task ? this.turns.get(task) : undefined;
        if (typeof d.child === 'string') this.taskParent.set(d.child, parentTurn?.spanId ?? (run ? runSpanIdOf(run) : ''));
        return;
      }
      case 'task.running':
        if (task && run) this.startTurn(task, run, e);
        return;
      case 'turn.answered': {
        const t = task ? this.turns.get(task) : undefined;
        if (t && typeof d.turn === 'number') t.attributes['spine.turn'] = d.turn;
        return;
      }
      case 'turn.committed': {
        if (!task || !run) return;
        this.endTurn(task, e.at, null, { 'spine.turn.outcome': str(d.outcome) });
        // A task that goes on in the same lease starts its next turn now.
        if (d.outcome === 'continue') this.startTurn(task, run, e);
        return;
      }
      case 'effect.started': {
        if (!task || typeof d.key !== 'string') return;
        const parent = this.turns.get(task);
        this.effects.set(d.key, {
          name: `execute_tool ${str(d.tool)}`.trim(),
          spanId: spanIdOf(`effect:${d.key}:${e.seq}`),
          parentId: parent?.spanId ?? this.taskParent.get(task) ?? null,
          start: e.at,
          kind: SpanKind.INTERNAL,
          runId: run ?? '',
          attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': str(d.tool), 'spine.effect.key': d.key, 'spine.task.id': task },
        });
        return;
      }
      case 'effect.completed':
      case 'effect.failed': {
        const key = typeof d.key === 'string' ? d.key : '';
        const open = this.effects.get(key);
        this.effects.delete(key);
        if (open && open.runId) this.emit(open.runId, open, e.at, e.kind === 'effect.failed' ? 'tool failed' : null, { 'spine.effect.maybe_repeated': d.maybeRepeated === true });
        return;
      }
      case 'task.reclaimed':
        if (task) this.endTurn(task, e.at, 'lease expired: the worker died or stalled; the task was requeued');
        return;
      default:
        // Any other way a task leaves its lease ends the turn in progress.
        if (task && (e.kind === 'task.released' || e.kind === 'task.cancelled' || e.kind === 'task.dead')) this.endTurn(task, e.at, e.kind === 'task.released' ? null : e.kind.slice(5));
    }
  }

  private startTurn(task: string, run: string, e: AuditEvent): void {
    this.endTurn(task, e.at, 'superseded');
    this.turns.set(task, {
      name: `invoke_agent ${e.agent ?? ''}`.trim(),
      spanId: spanIdOf(`turn:${task}:${e.seq}`),
      parentId: this.taskParent.get(task) ?? runSpanIdOf(run),
      start: e.at,
      kind: SpanKind.INTERNAL,
      runId: run,
      attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': e.agent ?? '', 'spine.task.id': task, 'spine.run.id': run, 'spine.worker.id': e.actor ?? '' },
    });
  }

  private endTurn(task: string, at: number, error: string | null, extra: Attributes = {}): void {
    const t = this.turns.get(task);
    if (!t) return;
    this.turns.delete(task);
    this.emit(t.runId, t, at, error, extra);
  }

  private readonly traceIds = new Map<string, string>();

  private emit(runId: string, open: Open, end: number, error: string | null, extra: Attributes = {}): void {
    let traceId = this.traceIds.get(runId);
    if (traceId === undefined) {
      traceId = traceIdOf(runId);
      this.traceIds.set(runId, traceId);
      // Bounded: the oldest runs' ids are recomputed if they ever come back.
      if (this.traceIds.size > 10_000) this.traceIds.delete(this.traceIds.keys().next().value as string);
    }
    this.ids.next = { traceId, spanId: open.spanId };
    const parent = open.parentId ? trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: open.parentId, traceFlags: TraceFlags.SAMPLED, isRemote: true }) : ROOT_CONTEXT;
    try {
      const span = this.tracer.startSpan(open.name, { kind: open.kind, startTime: open.start, attributes: { ...open.attributes, ...extra }, root: open.parentId === null }, parent);
      if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      span.end(Math.max(end, open.start));
    } finally {
      this.ids.next = null;
    }
  }
}
