import { NotFoundError } from '../core/errors.ts';
import type { Json } from '../core/types.ts';
import type { ChainedEvent } from '../store/audit.ts';
import type { Store } from '../store/store.ts';
import { verifyAudit, type VerifyReport } from './verify.ts';
import { MESH_EVENT_PREFIX } from '../core/mesh.ts';
import type { KeyObject } from 'node:crypto';

/**
 * `spine why <id>`: walks the causal graph backwards from an effect, approval, task,
 * run or envelope — effect ← action ← turn ← task ← handoff ← … ← run ← envelope ←
 * the binding that fired — with the policy decisions, gate verdicts and approvals on
 * the way. Every step lists the audit events that record it, each with its seq, its
 * place in its chain and whether it verifies.
 */

export const WHY_STEP_KINDS = ['effect', 'mesh', 'action', 'approval', 'turn', 'task', 'handoff', 'run', 'envelope', 'binding'] as const;
export type WhyStepKind = (typeof WHY_STEP_KINDS)[number];
/** What `spine why` starts from (a mesh call's key is one: docs/mesh.md). */
export const WHY_TARGET_KINDS = ['effect', 'mesh', 'approval', 'task', 'run', 'envelope'] as const;

export interface WhyEvent {
  seq: number;
  kind: string;
  at: number;
  stream: string | null;
  streamSeq: number | null;
  actor: string | null;
  data: Json | null;
  verified: boolean;
}

export interface WhyStep {
  kind: WhyStepKind;
  id: string;
  summary: string;
  events: WhyEvent[];
}

export interface WhyGraph {
  target: { kind: (typeof WHY_TARGET_KINDS)[number]; id: string };
  runId: string | null;
  /** From the target back to its first cause. */
  steps: WhyStep[];
  /** Whether every event of the run's streams verified (docs/audit.md). */
  verified: boolean;
  verdict: VerifyReport['verdict'];
}

type Data = Record<string, Json>;
/** A JSON value as text: strings as they are, anything else as JSON. */
const text = (v: Json | undefined): string => (typeof v === 'string' ? v : v === undefined ? '' : JSON.stringify(v));
const dataOf = (e: ChainedEvent): Data => (e.data && typeof e.data === 'object' && !Array.isArray(e.data) ? (e.data) : {});

async function runEvents(store: Store, runId: string): Promise<ChainedEvent[]> {
  const all: ChainedEvent[] = [];
  for (const stream of await store.audit.streamsOfRun(runId)) {
    let after: { stream: string; streamSeq: number } | null = null;
    for (;;) {
      const page = await store.audit.chainPage({ after, stream, limit: 5_000 });
      all.push(...page);
      if (page.length < 5_000) break;
      after = { stream, streamSeq: page.at(-1)!.streamSeq! };
    }
  }
  return all.sort((a, b) => a.seq - b.seq);
}

export async function why(store: Store, id: string, opts: { publicKey: KeyObject | null; now: number }): Promise<WhyGraph> {
  let target: WhyGraph['target'];
  let runId: string;
  let taskId: string | null = null;
  let effectKey: string | null = null;
  let approvalId: string | null = null;
  if (id.includes('/')) {
    const [r, t] = id.split('/');
    const effect = r && t ? (await store.tasks.effects({ taskId: t })).find((e) => e.key === id) : undefined;
    if (effect) {
      target = { kind: 'effect', id };
      ({ runId, taskId } = effect);
    } else {
      // Perhaps a direct call's key (docs/mesh.md): it has shadow records, not a ledger entry; checked once the run's events are read.
      if (!r || !t) throw new NotFoundError('effect', id);
      target = { kind: 'mesh', id };
      runId = r;
      taskId = t;
    }
    effectKey = id;
  } else if (id.startsWith('apr_')) {
    const a = await store.approvals.get(id);
    if (!a) throw new NotFoundError('approval', id);
    target = { kind: 'approval', id };
    ({ runId, taskId } = a);
    effectKey = a.actionKey;
    approvalId = id;
  } else if (id.startsWith('task_')) {
    const t = await store.tasks.get(id);
    if (!t) throw new NotFoundError('task', id);
    target = { kind: 'task', id };
    runId = t.runId;
    taskId = t.id;
  } else if (id.startsWith('env_')) {
    const e = await store.envelopes.get(id);
    if (!e) throw new NotFoundError('envelope', id);
    if (!e.runId) {
      return { target: { kind: 'envelope', id }, runId: null, steps: [{ kind: 'envelope', id, summary: `${e.channel} envelope, ${e.state}${e.error ? `: ${e.error.message}` : ''}`, events: [] }], verified: true, verdict: 'clean' };
    }
    target = { kind: 'envelope', id };
    runId = e.runId;
  } else {
    const r = await store.runs.get(id);
    if (!r) throw new NotFoundError('run', id);
    target = { kind: 'run', id };
    runId = r.id;
  }

  const events = await runEvents(store, runId);
  if (target.kind === 'mesh' && !events.some((e) => e.kind.startsWith(MESH_EVENT_PREFIX) && dataOf(e).key === id)) throw new NotFoundError('effect', id);
  const report = await verifyAudit(store.audit, { runId, publicKey: opts.publicKey, now: opts.now });
  const bad = new Set(report.findings.map((f) => f.seq).filter((s): s is number => s !== null));
  const show = (es: ChainedEvent[]): WhyEvent[] =>
    es.map((e) => ({ seq: e.seq, kind: e.kind, at: e.at, stream: e.stream, streamSeq: e.streamSeq, actor: e.actor ?? null, data: e.data ?? null, verified: e.hash !== null && !bad.has(e.seq) }));
  const steps: WhyStep[] = [];

  if (effectKey) {
    const [, , turnText, actionText] = effectKey.split('/');
    const turn = Number(turnText);
    const index = Number(actionText);
    const approvals = events.filter((e) => e.kind === 'approval.requested' && dataOf(e).key === effectKey).map((e) => text(dataOf(e).approval));
    const onKey = events.filter((e) => e.taskId === taskId && dataOf(e).key === effectKey && !e.kind.startsWith('approval.'));
    const effect = (await store.tasks.effects({ taskId: taskId! })).find((e) => e.key === effectKey);
    if (target.kind === 'mesh') steps.push(...meshSteps(events, (key) => key === effectKey, show));
    else {
      steps.push({
        kind: 'effect',
        id: effectKey,
        summary: effect ? `${effect.tool}: ${effect.state} (attempts ${effect.attempts})` : 'not executed',
        events: show(onKey),
      });
    }
    for (const a of approvals) {
      if (approvalId && a !== approvalId) continue;
      const rec = await store.approvals.get(a);
      steps.push({
        kind: 'approval',
        id: a,
        summary: rec ? `${rec.state}${rec.decidedBy ? ` by ${rec.decidedBy}` : ''}${rec.decisionReason ? ` (${rec.decisionReason})` : ''}; rule ${rec.ruleId ?? '—'}: ${rec.reason}` : a,
        events: show(events.filter((e) => e.kind.startsWith('approval.') && dataOf(e).approval === a)),
      });
    }
    const decided = events.find((e) => e.taskId === taskId && e.kind === 'turn.decided' && dataOf(e).turn === turn);
    const actions = decided ? dataOf(decided).actions : undefined;
    const action = Array.isArray(actions) ? actions[index] : undefined;
    steps.push({ kind: 'action', id: `${taskId}/${turn}/${index}`, summary: action ? JSON.stringify(action) : `action ${index} of turn ${turn}`, events: show(decided ? [decided] : []) });
    const turnEvents = events.filter((e) => e.taskId === taskId && e.kind.startsWith('turn.') && dataOf(e).turn === turn);
    const answered = turnEvents.find((e) => e.kind === 'turn.answered');
    steps.push({ kind: 'turn', id: `${taskId}/${turn}`, summary: `turn ${turn}${answered ? `, input ${text(dataOf(answered).input ?? '—')}, answer ${answered.digest ?? '—'}` : ''}`, events: show(turnEvents) });
  }

  // A task's or run's direct calls: each with its shadow records.
  if (target.kind === 'task' || target.kind === 'run') steps.push(...meshSteps(taskId ? events.filter((e) => e.taskId === taskId) : events, () => true, show));

  // The task, its handoff from its parent, and so on up to the root.
  for (let t = taskId ? await store.tasks.get(taskId) : null; t; t = t.parentId ? await store.tasks.get(t.parentId) : null) {
    const own = events.filter((e) => e.taskId === t.id && (e.kind === 'task.created' || e.kind.startsWith('task.')));
    steps.push({ kind: 'task', id: t.id, summary: `${t.agent}: ${t.state}${t.depth ? ` (depth ${t.depth})` : ''}`, events: show(own) });
    if (!t.parentId) break;
    const handoff = events.filter((e) => e.taskId === t.parentId && e.kind === 'action.handoff' && dataOf(e).child === t.id);
    const key = t.parentTurn !== null && t.parentAction !== null ? `${runId}/${t.parentId}/${t.parentTurn}/${t.parentAction}` : null;
    const decisions = key ? events.filter((e) => e.taskId === t.parentId && dataOf(e).key === key) : [];
    steps.push({ kind: 'handoff', id: `${t.parentId}→${t.id}`, summary: `handed off by ${t.parentId}, turn ${t.parentTurn ?? '?'}, action ${t.parentAction ?? '?'}`, events: show([...decisions, ...handoff]) });
  }

  const run = await store.runs.get(runId);
  steps.push({ kind: 'run', id: runId, summary: run ? `${run.agent}: ${run.state}` : runId, events: show(events.filter((e) => e.kind.startsWith('run.') && e.taskId === null)) });
  if (run?.envelopeId) {
    const env = await store.envelopes.get(run.envelopeId);
    const received = events.filter((e) => e.kind === 'envelope.received' && dataOf(e).envelope === run.envelopeId);
    steps.push({ kind: 'envelope', id: run.envelopeId, summary: env ? `${env.channel}/${env.account} from ${env.peer.id}` : run.envelopeId, events: show(received) });
    const routed = events.filter((e) => (e.kind === 'route.decided' || e.kind === 'route.unroutable') && dataOf(e).envelope === run.envelopeId);
    const decision = routed[0] ? dataOf(routed[0]).decision : env?.route ?? null;
    const d = decision && typeof decision === 'object' && !Array.isArray(decision) ? (decision) : {};
    steps.push({ kind: 'binding', id: text(d.binding ?? d.bindingId ?? 'default'), summary: text(d.why ?? d.explanation ?? decision), events: show(routed) });
  }

  const verified = steps.every((s) => s.events.every((e) => e.verified)) && report.verdict !== 'tampered';
  return { target, runId, steps, verified, verdict: report.verdict };
}

/**
 * One step per direct call (docs/mesh.md) among `events` whose key `wanted` picks: its
 * mesh.call / mesh.reply / mesh.refused records, nested calls' included (their keys
 * extend the top call's), and the boundary's decisions on its key.
 */
function meshSteps(events: ChainedEvent[], wanted: (key: string) => boolean, show: (es: ChainedEvent[]) => WhyEvent[]): WhyStep[] {
  const tops = new Map<string, ChainedEvent[]>();
  for (const e of events) {
    const key = dataOf(e).key;
    if (typeof key !== 'string' || !e.kind.startsWith(MESH_EVENT_PREFIX) || dataOf(e).hop !== 1 || !wanted(key)) continue;
    tops.set(key, []);
  }
  for (const e of events) {
    const key = dataOf(e).key;
    if (typeof key !== 'string') continue;
    for (const [top, list] of tops) if (key === top || (key.startsWith(`${top}/`) && e.kind.startsWith(MESH_EVENT_PREFIX))) list.push(e);
  }
  return [...tops].map(([key, list]) => {
    const first = list.find((e) => e.kind.startsWith(MESH_EVENT_PREFIX));
    const d = first ? dataOf(first) : {};
    const last = [...list].reverse().find((e) => e.kind === 'mesh.reply' || e.kind === 'mesh.refused');
    const outcome = !last ? 'no reply: the caller died mid-call' : last.kind === 'mesh.refused' ? `refused (${text(dataOf(last).reason)})` : dataOf(last).ok ? 'answered' : `failed (${text(dataOf(last).code)})`;
    return { kind: 'mesh' as const, id: key, summary: `direct call ${text(d.from)} → ${text(d.to)}: ${outcome}`, events: show(list) };
  });
}
