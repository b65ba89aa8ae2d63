import type { Clock } from '../core/clock.ts';
import { BREAKER_STATES, RUN_STATES, TASK_STATES, TERMINAL_RUN_STATES } from '../core/states.ts';
import type { Meter } from '../core/meter.ts';
import type { AuditEvent } from '../store/audit.ts';
import type { Store } from '../store/store.ts';

/**
 * Spine's metrics (docs/observability.md), on any Meter:
 *
 * - gauges read from the store at each scrape (tasks by state, queue depth by agent,
 *   approvals pending and their age, spend per ceiling, outbox backlog, workers,
 *   stuck leases), so every process that serves /metrics reports the same truth;
 * - counters and histograms folded from the audit log as it grows (turns, actions,
 *   effects, retries, dead letters, reclaims, policy decisions, deliveries, schedule
 *   fires and misses): the audit event is written in the transaction of the change it
 *   records, so a counter moves exactly when the change commits, whichever process
 *   made it. They count from this process's start, like any Prometheus counter.
 */
export interface SpineMetricsDeps {
  store: Store;
  clock: Clock;
  /** Live event-stream subscribers (the gateway's hub), when this process serves streams. */
  subscribers?: () => number;
  /** Count audit events after this seq (the process's start); default: from the first scrape. */
  fromSeq?: number;
  /** Heartbeats newer than this count a worker alive. */
  aliveWithinMs?: number;
}

const PAGE = 1_000;
/** Tasks whose last start we remember for durations; older entries are dropped first. */
const MAX_TRACKED = 20_000;
const MICROS = 1_000_000;

export function registerSpineMetrics(meter: Meter, deps: SpineMetricsDeps): { fold(events: readonly AuditEvent[]): void } {
  const { store, clock } = deps;
  // ── gauges (the store, read at scrape) ──
  const tasks = meter.gauge('spine_tasks', 'Tasks by state (terminal states included).', ['state']);
  const runs = meter.gauge('spine_runs', 'Runs by state.', ['state']);
  const queue = meter.gauge('spine_queue_depth', 'Tasks queued or scheduled for retry, by agent.', ['agent']);
  const active = meter.gauge('spine_tasks_active', 'Non-terminal tasks by agent and state.', ['agent', 'state']);
  const stuck = meter.gauge('spine_leases_expired', 'Tasks still held after their lease expired (their worker died; the reaper will requeue them).');
  const queueLag = meter.gauge('spine_queue_oldest_ready_age_seconds', 'Age of the oldest task that is due but not yet leased.');
  const approvals = meter.gauge('spine_approvals_pending', 'Approvals waiting for a decision.');
  const approvalAge = meter.gauge('spine_approvals_oldest_pending_age_seconds', 'Age of the oldest pending approval.');
  const spent = meter.gauge('spine_budget_settled_dollars', 'Settled spend per ceiling key and period.', ['ceiling']);
  const reserved = meter.gauge('spine_budget_reserved_dollars', 'Spend reserved by turns in flight, per ceiling key and period.', ['ceiling']);
  const spentTokens = meter.gauge('spine_budget_settled_tokens', 'Settled tokens per ceiling key and period.', ['ceiling']);
  const outbox = meter.gauge('spine_outbox_messages', 'Outbound messages not yet sent, by channel and state.', ['channel', 'state']);
  const workers = meter.gauge('spine_workers_alive', 'Workers that heartbeated recently.');
  const subscribers = meter.gauge('spine_event_stream_subscribers', 'Open live event-stream subscriptions (SSE and WebSocket) on this gateway.');

  // ── counters (the audit log, folded as it grows) ──
  const auditEvents = meter.counter('spine_audit_events_total', 'Audit events committed, by kind.', ['kind']);
  const turns = meter.counter('spine_turns_total', 'Agent turns committed, by agent and outcome.', ['agent', 'outcome']);
  const turnSeconds = meter.histogram('spine_turn_duration_seconds', 'From a turn starting to its answer, by agent.', ['agent']);
  const claimToStart = meter.histogram('spine_task_claim_to_start_seconds', 'From a task being leased to its turn starting.', ['agent']);
  const queueWait = meter.histogram('spine_task_queue_wait_seconds', 'From a task becoming ready (created, queued, joined) to being leased.', ['agent']);
  const actions = meter.counter('spine_actions_total', 'Actions that crossed the policy stage, by kind (tool, handoff, deliver, remember).', ['kind']);
  const refused = meter.counter('spine_actions_refused_total', 'Actions refused at the boundary, by error code.', ['code']);
  const effects = meter.counter('spine_effects_total', 'Tool effects by tool and outcome (completed, failed, replayed).', ['tool', 'outcome']);
  const retries = meter.counter('spine_task_retries_total', 'Task attempts that failed and were scheduled again.', ['agent']);
  const dead = meter.counter('spine_task_dead_letters_total', 'Tasks that went dead (retries exhausted, not retryable, reclaimed too often).', ['agent']);
  const reclaims = meter.counter('spine_task_reclaims_total', 'Expired leases requeued by the reaper.', ['agent']);
  const policy = meter.counter('spine_policy_decisions_total', 'Policy decisions by rule and effect.', ['rule', 'effect']);
  const deliveries = meter.counter('spine_outbox_deliveries_total', 'Outbound delivery attempts by channel and outcome (sent, retry, dead).', ['channel', 'outcome']);
  const fires = meter.counter('spine_schedule_fires_total', 'Schedule fires, by schedule.', ['schedule']);
  const misses = meter.counter('spine_schedule_misses_total', 'Schedule fires skipped (missed while down, overlap), by schedule.', ['schedule']);
  const verdicts = meter.counter('spine_gate_verdicts_total', 'Gate verdicts by gate, crossing and outcome (pass, warn, reask, fix, block, escalate).', ['gate', 'crossing', 'outcome']);
  const breakerChanges = meter.counter('spine_breaker_transitions_total', 'Circuit breaker transitions (opened, half-open, closed, reset) and rejected calls, by breaker.', ['breaker', 'event']);
  const breakerState = meter.gauge('spine_breaker_state', 'Circuit breakers by state: 1 for the state each breaker is in.', ['breaker', 'state']);
  const runsFinished = meter.counter('spine_runs_finished_total', 'Runs that reached a terminal state, by state.', ['state']);

  /** Per task: when it last became ready, was leased, or started a turn. */
  const readyAt = new Map<string, number>();
  const leasedAt = new Map<string, number>();
  const startedAt = new Map<string, number>();
  const remember = (m: Map<string, number>, k: string, v: number) => {
    m.delete(k);
    m.set(k, v);
    if (m.size > MAX_TRACKED) m.delete(m.keys().next().value as string);
  };
  const str = (v: unknown, fallback = 'unknown') => (typeof v === 'string' && v !== '' ? v : fallback);
  const secs = (ms: number) => Math.max(0, ms) / 1000;

  function fold(events: readonly AuditEvent[]): void {
    for (const e of events) {
      auditEvents.inc({ kind: e.kind });
      const d = (e.data ?? {}) as Record<string, unknown>;
      const agent = e.agent ?? 'unknown';
      const task = e.taskId ?? '';
      switch (e.kind) {
        case 'task.created':
        case 'task.queued':
        case 'task.joined':
          remember(readyAt, task, e.at);
          break;
        case 'task.leased': {
          const r = readyAt.get(task);
          if (r !== undefined) queueWait.observe(secs(e.at - r), { agent });
          readyAt.delete(task);
          remember(leasedAt, task, e.at);
          break;
        }
        case 'task.running': {
          const l = leasedAt.get(task);
          if (l !== undefined) claimToStart.observe(secs(e.at - l), { agent });
          leasedAt.delete(task);
          remember(startedAt, task, e.at);
          break;
        }
        case 'turn.answered': {
          const s = startedAt.get(task);
          if (s !== undefined) turnSeconds.observe(secs(e.at - s), { agent });
          break;
        }
        case 'turn.committed':
          turns.inc({ agent, outcome: str(d.outcome) });
          // The next turn in the same lease starts now.
          remember(startedAt, task, e.at);
          break;
        case 'task.retry-scheduled':
          retries.inc({ agent });
          remember(readyAt, task, typeof d.runAt === 'number' ? d.runAt : e.at);
          break;
        case 'task.dead':
          dead.inc({ agent });
          break;
        case 'task.reclaimed':
          reclaims.inc({ agent });
          remember(readyAt, task, e.at);
          break;
        case 'effect.completed':
          effects.inc({ tool: str(d.tool), outcome: 'completed' });
          break;
        case 'effect.failed':
          effects.inc({ tool: str(d.tool), outcome: 'failed' });
          break;
        case 'effect.replayed':
          effects.inc({ tool: str(d.tool), outcome: 'replayed' });
          break;
        case 'policy.decision':
          policy.inc({ rule: str(d.ruleId, 'none'), effect: str(d.effect) });
          // One decision per action crossing policy: `tool:crm.read` → tool.
          actions.inc({ kind: str(d.action).split(':')[0]! });
          break;
        case 'action.refused':
          refused.inc({ code: str(d.code) });
          break;
        case 'outbox.attempt':
          deliveries.inc({ channel: str(d.channel), outcome: str(d.outcome) });
          break;
        case 'gate.verdict':
          verdicts.inc({ gate: str(d.gate), crossing: str(d.crossing), outcome: str(d.outcome) });
          break;
        case 'schedule.fired':
          fires.inc({ schedule: str(d.schedule) });
          break;
        case 'schedule.skipped':
          misses.inc({ schedule: str(d.schedule) }, typeof d.count === 'number' ? d.count : 1);
          break;
        default:
          if (e.kind.startsWith('breaker.')) breakerChanges.inc({ breaker: str(d.breaker), event: e.kind.slice('breaker.'.length) });
          if ((TERMINAL_RUN_STATES as readonly string[]).includes(e.kind.slice(4)) && e.kind.startsWith('run.')) runsFinished.inc({ state: e.kind.slice(4) });
          if (e.kind.startsWith('task.') && (TASK_STATES as readonly string[]).includes(e.kind.slice(5)) && e.kind !== 'task.leased' && e.kind !== 'task.running') {
            // A task left the lease: forget its start.
            startedAt.delete(task);
          }
      }
    }
  }

  // Counters start at this process's start: fold only what commits from now on.
  let cursor: number | null = deps.fromSeq ?? null;
  meter.onCollect(async () => {
    if (cursor === null) cursor = await store.audit.latestSeq();
    for (;;) {
      const page = await store.audit.list({ afterSeq: cursor, limit: PAGE });
      fold(page);
      if (page.length > 0) cursor = page.at(-1)!.seq;
      if (page.length < PAGE) break;
    }
  });
  meter.onCollect(async () => {
    const now = clock.now();
    const [health, observed] = await Promise.all([store.health(now, now - (deps.aliveWithinMs ?? 60_000)), store.observed.snapshot(now)]);
    tasks.reset();
    for (const s of TASK_STATES) tasks.set(health.tasksByState[s] ?? 0, { state: s });
    runs.reset();
    for (const s of RUN_STATES) runs.set(health.runsByState[s] ?? 0, { state: s });
    stuck.set(health.stuckLeases.count);
    queueLag.set(health.oldestReadyAt === null ? 0 : secs(now - health.oldestReadyAt));
    workers.set(health.workersAlive);
    queue.reset();
    active.reset();
    const depth = new Map<string, number>();
    for (const t of observed.tasks) {
      active.set(t.count, { agent: t.agent, state: t.state });
      if (t.state === 'queued' || t.state === 'retry-scheduled') depth.set(t.agent, (depth.get(t.agent) ?? 0) + t.count);
      else depth.set(t.agent, depth.get(t.agent) ?? 0);
    }
    for (const [a, n] of depth) queue.set(n, { agent: a });
    approvals.set(observed.approvals.pending);
    approvalAge.set(observed.approvals.oldestRequestedAt === null ? 0 : secs(now - observed.approvals.oldestRequestedAt));
    spent.reset();
    reserved.reset();
    spentTokens.reset();
    for (const b of observed.budgets) {
      spent.set(b.spentMicros / MICROS, { ceiling: b.key });
      reserved.set(b.reservedMicros / MICROS, { ceiling: b.key });
      spentTokens.set(b.spentTokens, { ceiling: b.key });
    }
    outbox.reset();
    for (const o of observed.outbox) outbox.set(o.count, { channel: o.channel, state: o.state });
    subscribers.set(deps.subscribers?.() ?? 0);
    breakerState.reset();
    for (const b of await store.breakers.list()) for (const st of BREAKER_STATES) breakerState.set(b.state === st ? 1 : 0, { breaker: b.key, state: st });
  });
  return { fold };
}
