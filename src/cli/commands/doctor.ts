import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { intOption, parse } from '../args.ts';
import { maybeConfig, storeUrl } from '../context.ts';
import { localProbe } from '../workers.ts';
import { aliveSince, liveWorkers } from '../../validation/worker-liveness.ts';
import { table } from '../format.ts';
import type { CommandResult } from '../command.ts';
import { loadStore } from '../../runtime/store-url.ts';
import type { SchemaStatus, Store, StoreCapabilities, StoreHealth } from '../../store/store.ts';
import type { BreakerRecord } from '../../store/breakers.ts';
import type { ScheduleState } from '../../store/schedules.ts';
import { findStuckWork, type Finding, type LivenessSettings } from '../../validation/liveness.ts';
import { DEFAULT_APPROVAL_WARN_MS } from '../../validation/stuck.ts';
import type { ProbeResult, StuckFinding } from '../../store/store.ts';
import { DEFAULT_TIMEOUT_MS, DEFAULT_WORKER } from '../../engine/options.ts';

type Status = 'ok' | 'warn' | 'fail' | 'skip';

interface Check {
  name: string;
  status: Status;
  detail: string;
}

interface Report {
  healthy: boolean;
  store: string;
  capabilities: StoreCapabilities | null;
  schema: SchemaStatus | null;
  latencyMs: number | null;
  health: StoreHealth | null;
  checks: Check[];
  /** Stuck work (validation/liveness.ts). */
  findings: Finding[];
  /** What the workers' stuck-work sweep raised, newest first (validation/stuck.ts). */
  raised: StuckFinding[];
  /** The health probes' latest results (validation/probes.ts). */
  probes: ProbeResult[];
}


export async function doctorCommand(argv: string[]): Promise<CommandResult> {
  const { values } = parse(argv, { 'stuck-after': { type: 'string' }, 'run-sla': { type: 'string' }, 'approval-warn': { type: 'string' } }, 0);
  const stuckAfterMs = (intOption('stuck-after', values['stuck-after'], 0) ?? 60) * 1_000;
  const runSla = intOption('run-sla', values['run-sla']);
  const url = storeUrl(values);
  // Workers heartbeat as the config says; doctor also runs where there is no (valid) config.
  const config = await maybeConfig(values).catch(() => null);
  // The flags win; else the config's health.stuck settings (the ones the workers' sweep acts on).
  const stuck = config?.registry.stuck ?? null;
  const warn = intOption('approval-warn', values['approval-warn'], 0);
  const agents = config?.registry.agents;
  const report = await diagnose(url, stuckAfterMs, Date.now(), {
    runSlaMs: runSla === undefined ? (stuck?.runSlaMs ?? null) : runSla * 1_000,
    approvalWarnMs: warn === undefined ? (stuck?.approvalWarnMs ?? DEFAULT_APPROVAL_WARN_MS) : warn * 1_000,
    heartbeatMs: config?.worker.heartbeatMs ?? DEFAULT_WORKER.heartbeatMs,
    ...(agents ? { turnTimeoutMs: (a: string) => agents.get(a)?.timeoutMs ?? DEFAULT_TIMEOUT_MS } : {}),
  });
  const exitCode = report.healthy ? 0 : 1;
  if (values.json) return { stdout: JSON.stringify(report, null, 2), exitCode };
  return { stdout: render(report), exitCode };
}

export async function diagnose(
  url: string,
  stuckAfterMs: number,
  now = Date.now(),
  liveness: Partial<LivenessSettings> & { heartbeatMs?: number } = {},
): Promise<Report> {
  const heartbeatMs = liveness.heartbeatMs ?? DEFAULT_WORKER.heartbeatMs;
  const checks: Check[] = [];
  const report: Report = { healthy: false, store: url, capabilities: null, schema: null, latencyMs: null, health: null, checks, findings: [], raised: [], probes: [] };

  // An embedded store that does not exist yet would be created by opening it: report it instead.
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path !== ':memory:' && !existsSync(resolve(path))) {
      checks.push({ name: 'connectivity', status: 'fail', detail: `no database at ${resolve(path)} (run \`spine migrate\` or \`spine up\` first)` });
      return report;
    }
  }
  let store: Store;
  try {
    store = await loadStore({ url });
  } catch (err) {
    checks.push({ name: 'connectivity', status: 'fail', detail: message(err) });
    return report;
  }
  try {
    report.store = store.description;
    report.capabilities = store.capabilities;
    const started = performance.now();
    try {
      report.schema = await store.schemaStatus();
      report.latencyMs = Math.round((performance.now() - started) * 10) / 10;
      checks.push({ name: 'connectivity', status: 'ok', detail: `answered in ${report.latencyMs} ms` });
    } catch (err) {
      checks.push({ name: 'connectivity', status: 'fail', detail: message(err) });
      return report;
    }
    const caps = store.capabilities;
    checks.push({
      name: 'backend',
      status: 'ok',
      detail: `${store.description}; ${[
        caps.groupCommit ? 'group commit' : 'one transaction per commit',
        caps.crossProcessWakeups ? 'cross-process wake-ups (LISTEN/NOTIFY)' : 'in-process wake-ups only (other processes poll)',
        caps.skipLockedClaims ? 'SKIP LOCKED claims' : 'claims serialised by the write lock',
      ].join(', ')}`,
    });
    const { current, known } = report.schema;
    if (current === known) checks.push({ name: 'schema', status: 'ok', detail: `version ${current} (current)` });
    else if (current < known) checks.push({ name: 'schema', status: 'fail', detail: `version ${current}; this Spine needs ${known}: run \`spine migrate\`` });
    else checks.push({ name: 'schema', status: 'fail', detail: `version ${current} is newer than this Spine knows (${known}): upgrade Spine` });
    if (current !== known) {
      for (const name of ['leases', 'queue', 'approvals', 'outbox', 'breakers', 'heartbeats', 'probes', 'stuck work', 'audit']) checks.push({ name, status: 'skip', detail: 'schema not current' });
      return report;
    }

    const probe = localProbe(now, heartbeatMs);
    const h = await store.health(now, aliveSince(probe));
    // A worker that died a moment ago still has a fresh heartbeat: on this host, its process tells.
    h.workersAlive = liveWorkers(await store.workers.list({ aliveSince: aliveSince(probe) }), probe).length;
    report.health = h;
    if (h.stuckLeases.count === 0) checks.push({ name: 'leases', status: 'ok', detail: 'no lease held past its expiry' });
    else {
      const overdueMs = now - (h.stuckLeases.oldestExpiredAt ?? now);
      const status: Status = overdueMs > stuckAfterMs ? 'fail' : 'warn';
      checks.push({
        name: 'leases',
        status,
        detail: `${h.stuckLeases.count} task(s) held past lease expiry, oldest by ${seconds(overdueMs)} (${h.stuckLeases.taskIds.slice(0, 3).join(', ')}${h.stuckLeases.count > 3 ? ', …' : ''})${
          h.workersAlive === 0 ? '; no live worker to reclaim them' : '; a live worker reclaims them on its next reaper pass'
        }`,
      });
    }
    const depth = Object.entries(h.tasksByState)
      .map(([s, n]) => `${s} ${n}`)
      .join(', ');
    const ready = (h.tasksByState['queued'] ?? 0) + (h.tasksByState['retry-scheduled'] ?? 0);
    const lagMs = h.oldestReadyAt === null ? 0 : now - h.oldestReadyAt;
    // Ready work overdue by more than a heartbeat (time for a worker to start) and no live worker: nothing will run it.
    const starving = ready > 0 && h.workersAlive === 0 && lagMs > heartbeatMs;
    const lagging = !starving && ready > 0 && lagMs > stuckAfterMs;
    checks.push({
      name: 'queue',
      status: starving ? 'fail' : lagging ? 'warn' : 'ok',
      detail: `tasks: ${depth || 'none'}; ${h.workersAlive} live worker(s)${h.oldestReadyAt === null ? '' : `; oldest ready task due ${seconds(lagMs)} ago`}${
        starving ? '; nothing is leasing: start a worker (`spine up` or `spine worker`)' : lagging ? '; the workers are behind' : ''
      }`,
    });
    checks.push({ name: 'approvals', status: 'ok', detail: `${h.pendingApprovals} pending` });
    const outboxLag = h.outbox.oldestDueAt === null ? 0 : Math.max(0, now - h.outbox.oldestDueAt);
    checks.push({
      name: 'outbox',
      status: h.outbox.dead > 0 ? 'warn' : 'ok',
      detail: `${h.outbox.pending} waiting${h.outbox.pending ? ` (oldest due ${seconds(outboxLag)} ago)` : ''}, ${h.outbox.dead} dead${h.outbox.dead ? ' (requeue them once the channel works)' : ''}`,
    });
    checks.push(breakerCheck(await store.breakers.list(), now));
    checks.push(heartbeatCheck(await store.schedules.list()));
    report.probes = await store.probes.list();
    checks.push(probeCheck(report.probes, now));
    const findings = await findStuckWork(store, now, { approvalWarnMs: DEFAULT_APPROVAL_WARN_MS, runSlaMs: null, turnTimeoutMs: () => DEFAULT_TIMEOUT_MS, ...liveness });
    report.findings = findings;
    report.raised = await store.stuck.list(20);
    checks.push(
      findings.length === 0
        ? { name: 'stuck work', status: 'ok', detail: 'no expired lease, turn past its timeout, overdue join, approval about to expire or run past its SLA' }
        : { name: 'stuck work', status: 'warn', detail: findings.slice(0, 5).map((f) => `${f.kind} ${f.id}: ${f.detail}`).join('; ') + (findings.length > 5 ? `; … ${findings.length - 5} more` : '') },
    );
    // The last `spine audit verify` (or GET /v1/audit/verify): doctor reports it, it does not re-run it.
    const v = await store.audit.lastVerification();
    checks.push(
      v === null
        ? { name: 'audit', status: 'warn', detail: 'never verified: run `spine audit verify`' }
        : {
            name: 'audit',
            status: v.status === 'tampered' ? 'fail' : v.status === 'clean' ? 'ok' : 'warn',
            detail: `${v.status} at ${new Date(v.at).toISOString()} (${v.events} events)${v.status === 'tampered' ? ': run `spine audit verify` for the findings' : ''}`,
          },
    );
    return report;
  } catch (err) {
    checks.push({ name: 'store', status: 'fail', detail: message(err) });
    return report;
  } finally {
    report.healthy = checks.every((c) => c.status !== 'fail');
    await store.close().catch(() => {});
  }
}

/** Circuit breakers (validation.breakers): an open or half-open one is a warning naming it. */
function breakerCheck(breakers: BreakerRecord[], now: number): Check {
  const tripped = breakers.filter((b) => b.state !== 'closed');
  if (tripped.length === 0) return { name: 'breakers', status: 'ok', detail: breakers.length ? `${breakers.length} closed` : 'none tripped' };
  const what = tripped.map((b) => `${b.key} ${b.state}${b.state === 'open' && b.retryAt !== null ? ` (probe in ${seconds(b.retryAt - now)})` : ''}${b.lastError ? `, last ${b.lastError}` : ''}`);
  return { name: 'breakers', status: 'warn', detail: what.join('; ') };
}

/** Heartbeats a streak paused (docs/schedules.md): a warning naming each, with the reason and how to resume. */
function heartbeatCheck(rows: ScheduleState[]): Check {
  const paused = rows.filter((r) => r.heartbeat.paused);
  if (paused.length === 0) return { name: 'heartbeats', status: 'ok', detail: 'none paused' };
  const what = paused.map((r) => `${r.id} paused at ${new Date(r.heartbeat.paused!.at).toISOString()}: ${r.heartbeat.paused!.reason} (spine schedules resume ${r.id})`);
  return { name: 'heartbeats', status: 'warn', detail: what.join('; ') };
}

/** Health probes (agents' `health`): a failing one is a warning naming it. */
function probeCheck(probes: ProbeResult[], now: number): Check {
  const ran = probes.filter((p) => p.checkedAt !== null);
  if (ran.length === 0) return { name: 'probes', status: 'ok', detail: 'none run yet' };
  const failing = ran.filter((p) => p.ok === false);
  const line = (p: ProbeResult) => `${p.key} ${p.ok ? 'ok' : 'FAILING'} ${seconds(now - (p.checkedAt ?? now))} ago${p.ok ? '' : `: ${p.detail ?? ''}`}`;
  if (failing.length === 0) return { name: 'probes', status: 'ok', detail: ran.map(line).join('; ') };
  return { name: 'probes', status: 'warn', detail: failing.map(line).join('; ') };
}

function render(r: Report): string {
  const mark: Record<Status, string> = { ok: 'ok', warn: 'WARN', fail: 'FAIL', skip: '-' };
  const lines = [table(['CHECK', 'STATUS', 'DETAIL'], r.checks.map((c) => [c.name, mark[c.status], c.detail]))];
  if (r.health) {
    const runs = Object.entries(r.health.runsByState)
      .map(([s, n]) => `${s} ${n}`)
      .join(', ');
    lines.push('', `runs: ${runs || 'none'}`);
  }
  if (r.raised.length > 0) {
    lines.push('', 'stuck work raised by the workers (newest first):');
    lines.push(table(['KIND', 'SUBJECT', 'RUN', 'ACTION', 'FOUND', 'DETAIL'], r.raised.map((f) => [f.kind, f.subject, f.runId, f.approvalId ? `escalate (${f.approvalId})` : f.action, new Date(f.foundAt).toISOString(), f.detail])));
  }
  lines.push('', r.healthy ? 'healthy' : 'UNHEALTHY');
  return lines.join('\n');
}

function seconds(ms: number): string {
  return ms < 1_000 ? `${Math.max(0, Math.round(ms))} ms` : `${Math.round(ms / 100) / 10} s`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
