import type { Brief, Conflict } from '../core/brief.ts';
import { digest } from '../core/digest.ts';
import { faultPoint } from '../core/faults.ts';
import { newId } from '../core/ids.ts';
import type { ActionResult, Json, Task } from '../core/types.ts';
import type { Approval, AuditEntry, ClaimedTask, NewApproval, NewChildTask } from '../store/store.ts';
import type { NewOutboxItem } from '../store/outbox.ts';
import { briefDigest, startBrief } from '../synthesis/brief.ts';
import type { SynthesisSpec } from '../synthesis/config.ts';
import { claimsOf, type Lane } from '../synthesis/detect.ts';
import { advance, choiceOf, ruleFor, type Answers } from '../synthesis/resolve.ts';
import type { AgentSpec } from './options.ts';
import type { Clock } from '../core/clock.ts';
import type { Store } from '../store/store.ts';
import type { Registry } from './options.ts';
import { taskCrossing, type Boundary } from './boundary.ts';

/** What synthesis needs of the task runner's environment. */
export interface SynthesisEnv {
  store: Store;
  boundary: Boundary;
  registry: Registry;
  clock: Clock;
  workerId: string;
}

/**
 * Synthesis of a join, run by the hub when a parent with a `synthesis` block wakes
 * from its handoffs: claims → conflicts (synthesis/detect.ts) → resolution chains
 * (synthesis/resolve.ts) → the brief its next turn gets. A judge is a child task the
 * hub dispatches; a human is an approval. Each step is one commit under the parent's
 * lease (store.briefs.save), so a hub killed anywhere resumes from the brief as
 * saved: a judge already asked or an approval already open is waited for, never
 * asked again.
 */

export type Synthesis = { brief: Brief | null } | { waiting: true };

export async function synthesize(env: SynthesisEnv, claimed: ClaimedTask, spec: AgentSpec, results: ActionResult[], carried: AuditEntry[]): Promise<Synthesis> {
  const { store, clock, registry } = env;
  const { task } = claimed;
  const joined = claimed.history.at(-1);
  if (!spec.synthesis || !joined) return { brief: null };
  const cfg = spec.synthesis;
  const now = clock.now();
  const base = { runId: task.runId, taskId: task.id, agent: task.agent, actor: env.workerId };
  const audit: AuditEntry[] = [];

  const saved = await store.briefs.forTurn(task.id, joined.turn);
  if (saved?.state === 'done') return { brief: saved };
  // The run's tasks, read once: the lanes' agents and turns, and any judge in flight.
  const tasks = new Map((await store.tasks.list({ runId: task.runId, limit: 100_000 })).map((t) => [t.id, t]));

  let brief: Brief;
  if (saved) brief = saved;
  else {
    const lanes = lanesOf(joined.actions, results, tasks);
    brief = { id: newId('brief'), runId: task.runId, taskId: task.id, turn: joined.turn, agent: task.agent, state: 'resolving', digest: null, ...startBrief(lanes, cfg), createdAt: now, updatedAt: now };
    audit.push({
      ...base,
      kind: 'brief.detected',
      data: { brief: brief.id, turn: joined.turn, lanes: brief.lanes, parts: brief.parts.length, conflicts: brief.conflicts.map((c) => c.key), missing: brief.missing.map((m) => m.key), failedLanes: brief.failedLanes.length },
    });
  }

  const approvals = brief.conflicts.some((c) => c.pending?.approval) ? await store.approvals.list({ runId: task.runId, limit: 10_000 }) : [];
  const judges: NewChildTask[] = [];
  const humans: Array<{ index: number; approval: NewApproval }> = [];
  let waitingOnApproval = false;
  const conflicts: Conflict[] = [];
  for (const [index, before] of brief.conflicts.entries()) {
    if (before.decision || before.unresolved) {
      conflicts.push(before);
      continue;
    }
    const chain = ruleFor(before.key, cfg.rules).chain;
    let { conflict, need } = advance(before, chain, answersFor(before, tasks, approvals));
    // A judge the boundary refuses (its contract, the parent's grants, gates) is a failed step: the chain goes on.
    while (need && 'judge' in need) {
      const judge = registry.agents.get(need.judge.agent);
      const input = judgeInput(task, conflict);
      const verdict = judge
        ? await env.boundary.handoff(taskCrossing(task, claimed.tenant, env.workerId, `${task.runId}/${task.id}/${joined.turn}/judge/${conflict.key}`, claimed.origin), judge, input, undefined)
        : null;
      if (verdict) audit.push(...verdict.audit);
      if (!verdict || verdict.effect !== 'allow') {
        const code = !verdict ? 'UNKNOWN_AGENT' : verdict.effect === 'deny' ? verdict.error.code : `needs ${verdict.effect}`;
        ({ conflict, need } = advance({ ...conflict, pending: { judge: '(refused)' } }, chain, { judge: { state: 'failed', code } }));
        continue;
      }
      const id = newId('task');
      judges.push({ id, agent: need.judge.agent, input, parentAction: -(index + 1), maxAttempts: judge!.retry.maxAttempts });
      conflict.pending = { judge: id };
      audit.push({ ...base, kind: 'conflict.judge-asked', data: { brief: brief.id, key: conflict.key, judge: need.judge.agent, task: id, candidates: conflict.candidates.length } });
      break;
    }
    if (need && 'human' in need) {
      humans.push({ index, approval: approvalFor(task, brief, conflict, need.human, now) });
    } else if (need && 'wait' in need && need.wait === 'approval') waitingOnApproval = true;
    for (const step of conflict.steps.slice(before.steps.length)) {
      if (step.outcome !== 'decided') audit.push({ ...base, kind: 'conflict.passed', data: { brief: brief.id, key: conflict.key, strategy: step.strategy, outcome: step.outcome, ...(step.note ? { note: step.note } : {}) } });
    }
    if (conflict.decision) {
      audit.push({
        ...base,
        kind: 'conflict.decided',
        digest: digest(conflict.decision.value),
        data: { brief: brief.id, key: conflict.key, strategy: conflict.decision.strategy, decider: conflict.decision.decider as unknown as Json, candidates: conflict.candidates.map((c) => c.value) },
      });
    } else if (conflict.unresolved) {
      audit.push({ ...base, kind: 'conflict.unresolved', data: { brief: brief.id, key: conflict.key, candidates: conflict.candidates.map((c) => c.value) } });
    }
    conflicts.push(conflict);
  }
  brief = { ...brief, conflicts, updatedAt: now };

  if (judges.length > 0) {
    // Judges first; a human is asked once no judge is in flight (a decided approval must not wake a parent still waiting on judges).
    faultPoint('synthesis-before-step');
    await store.briefs.save({ lease: claimed.lease, brief, judges, audit: [...carried, ...audit] }, now);
    faultPoint('synthesis-after-step');
    return { waiting: true };
  }
  if (humans.length > 0) {
    for (const h of humans) {
      brief.conflicts[h.index]!.pending = { approval: h.approval.actionKey };
      audit.push({ ...base, kind: 'conflict.human-asked', data: { brief: brief.id, key: brief.conflicts[h.index]!.key, actionKey: h.approval.actionKey } });
    }
    faultPoint('synthesis-before-step');
    await store.briefs.save({ lease: claimed.lease, brief, approvals: humans.map((h) => h.approval), audit: [...carried, ...audit] }, now);
    faultPoint('synthesis-after-step');
    return { waiting: true };
  }
  if (waitingOnApproval) {
    faultPoint('synthesis-before-step');
    await store.briefs.save({ lease: claimed.lease, brief, park: true, audit: [...carried, ...audit] }, now);
    faultPoint('synthesis-after-step');
    return { waiting: true };
  }
  brief = { ...brief, state: 'done', digest: briefDigest(brief) };
  const outbox = cfg.deliver ? await deliverBrief(env, claimed, brief, cfg.deliver, audit) : [];
  audit.push({ ...base, kind: 'brief.done', digest: brief.digest!, data: { brief: brief.id, parts: brief.parts.length, decided: brief.conflicts.filter((c) => c.decision).length, unresolved: brief.conflicts.filter((c) => c.unresolved).length } });
  // The carried events (the lanes' handoffResult crossings) ride with the parent's turn as before.
  faultPoint('synthesis-before-step');
  await store.briefs.save({ lease: claimed.lease, brief, audit, ...(outbox.length ? { outbox } : {}) }, now);
  faultPoint('synthesis-after-step');
  return { brief };
}

/**
 * A finished brief sent to a channel: it crosses the boundary's deliver stage like any
 * outbound message (allowlists, approvals, windows, rate limits), and its outbox row,
 * keyed by the brief, is queued in the commit that finishes the brief. A crossing
 * that does not simply allow it is audited and nothing is sent.
 */
async function deliverBrief(env: SynthesisEnv, claimed: ClaimedTask, brief: Brief, to: NonNullable<SynthesisSpec['deliver']>, audit: AuditEntry[]): Promise<NewOutboxItem[]> {
  const { task } = claimed;
  const text = briefText(brief);
  const key = `${task.runId}/${task.id}/${brief.turn}/brief`;
  const payload: Json = { channel: to.channel, account: to.account, to: to.to, ...(to.thread ? { thread: to.thread } : {}), text };
  const verdict = await env.boundary.deliver(taskCrossing(task, claimed.tenant, env.workerId, key, claimed.origin), to.channel, to.to, payload);
  audit.push(...verdict.audit);
  if (verdict.effect !== 'allow') {
    audit.push({ runId: task.runId, taskId: task.id, agent: task.agent, actor: env.workerId, kind: 'brief.delivery-refused', data: { brief: brief.id, channel: to.channel, to: to.to, effect: verdict.effect, ...(verdict.effect === 'deny' ? { code: verdict.error.code } : {}) } });
    return [];
  }
  return [{ idempotencyKey: `brief:${brief.id}`, runId: task.runId, taskId: task.id, channel: to.channel, account: to.account, target: { to: to.to, ...(to.thread ? { thread: to.thread } : {}) }, payload: { text } }];
}

/** A brief as a message: each settled key, each unresolved one, the failed lanes, the digest. */
function briefText(b: Brief): string {
  const show = (v: Json) => (typeof v === 'string' ? v : JSON.stringify(v));
  const lines = [`Brief ${b.id} (${b.agent}, run ${b.runId})`];
  for (const p of b.parts) lines.push(`- ${p.key}: ${show(p.value)} (${p.from.map((f) => f.agent).join(', ')})`);
  for (const c of b.conflicts) {
    if (c.decision) lines.push(`- ${c.key}: ${show(c.decision.value)} (decided by ${c.decision.strategy})`);
    else lines.push(`- ${c.key}: unresolved (${c.candidates.map((x) => show(x.value)).join(' / ')})`);
  }
  if (b.failedLanes.length) lines.push(`Failed lanes: ${b.failedLanes.map((l) => `${l.agent} (${l.error.code})`).join(', ')}`);
  lines.push(`Digest ${b.digest}`);
  return lines.join('\n');
}

/** The joined turn's handoffs as lanes: the agent, the child task and its outcome. */
function lanesOf(actions: ClaimedTask['history'][number]['actions'], results: ActionResult[], tasks: Map<string, Task>): Lane[] {
  const lanes: Lane[] = [];
  for (const r of results) {
    if (r.type !== 'handoff' || !r.taskId) continue;
    const action = actions[r.index];
    const agent = action?.type === 'handoff' ? action.agent : (tasks.get(r.taskId)?.agent ?? '?');
    if (r.ok) lanes.push({ agent, task: r.taskId, turn: tasks.get(r.taskId)?.turns ?? 0, ok: true, claims: claimsOf(r.value) });
    else lanes.push({ agent, task: r.taskId, ok: false, error: r.error });
  }
  return lanes;
}

function answersFor(c: Conflict, tasks: Map<string, Task>, approvals: Approval[]): Answers {
  const out: Answers = {};
  if (c.pending?.judge) {
    const t = tasks.get(c.pending.judge);
    if (!t || !['succeeded', 'dead', 'cancelled'].includes(t.state)) out.judge = { state: 'pending' };
    else if (t.state === 'succeeded') out.judge = { state: 'succeeded', output: t.output, agent: t.agent, task: t.id, turn: t.turns };
    else out.judge = { state: 'failed', code: t.error?.code ?? t.state };
  }
  if (c.pending?.approval) {
    const a = approvals.find((x) => x.actionKey === c.pending!.approval);
    if (!a || a.state === 'pending') out.approval = { state: 'pending' };
    else if (a.state === 'approved') out.approval = { state: 'approved', id: a.id, actor: a.decidedBy ?? '?', choice: choiceOf(a.decisionReason, c.candidates.length) };
    else out.approval = { state: a.state, id: a.id, actor: a.decidedBy ?? '?' };
  }
  return out;
}

/** What a judge gets: the key, the candidates with who claimed them, what was tried, and the question the parent was asked. */
function judgeInput(task: Task, c: Conflict): Json {
  return {
    key: c.key,
    candidates: c.candidates.map((cand) => ({ value: cand.value, from: cand.from.map((f) => ({ agent: f.agent, ...(f.confidence === undefined ? {} : { confidence: f.confidence }), evidence: f.evidence as unknown as Json })) })),
    tried: c.steps as unknown as Json,
    question: task.input,
  };
}

function approvalFor(task: Task, brief: Brief, c: Conflict, s: { approvers: string; expiresInMs: number | null }, now: number): NewApproval {
  return {
    runId: task.runId,
    taskId: task.id,
    agent: task.agent,
    actionKey: `${task.runId}/${task.id}/${brief.turn}/brief/${c.key}`,
    action: { kind: 'conflict', name: c.key, brief: brief.id, options: c.candidates.map((cand, i) => ({ option: i + 1, value: cand.value, from: cand.from.map((f) => f.agent) })) },
    kind: 'approval',
    ruleId: null,
    reason: `agents disagree on "${c.key}": approve with --reason "<option>" to pick (1-${c.candidates.length}; default 1), deny to leave it unresolved`,
    approvers: s.approvers,
    expiresAt: s.expiresInMs === null ? null : now + s.expiresInMs,
    onExpiry: null,
  };
}
