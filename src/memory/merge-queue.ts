import type { Clock } from '../core/clock.ts';
import type { Envelope } from '../core/envelope.ts';
import type { Logger } from '../core/log.ts';
import { PollLoop } from '../core/poll-loop.ts';
import type { Json } from '../core/types.ts';
import type { FactVersion, MemoryConflict } from '../store/memory.ts';
import type { Store } from '../store/store.ts';
import { scopePolicyFor, type MemorySettings } from './settings.ts';

/** How long the merge queue sleeps when nothing moved (a decision or a finished merge run waits at most about this long). */
const IDLE_MS = 1_000;
const BATCH = 50;

/**
 * Submits a merge agent's task through intake (an envelope addressed to the agent,
 * deduplicated by `idempotencyKey`, so a repeat after a crash finds the same run);
 * returns its run id. Injected by the runtime: memory does not import intake.
 */
export type MergeDispatch = (req: { agent: string; tenant: string; input: Json; idempotencyKey: string }) => Promise<string>;

/**
 * The merge queue's last two strategies, driven from the store (every step is
 * durable and repeatable, so a process that dies anywhere resumes where it was):
 * - `agent`: each open conflict is handed to the scope's merge agent as a task with
 *   input `{conflict, scope, key, base, current, candidate}`; its output `{value,
 *   text?}` is written with compare-and-set on the version it merged against, and
 *   audited. A failed run, or a fact that moved meanwhile, rejects the conflict.
 * - `human`: each open conflict opens an approval whose options are the candidates
 *   (1: the write that lost its race, 2: keep the current version). Approving
 *   (reason "1"/"2", or none: option 1) resolves it; denying rejects it;
 *   `spine memory conflicts resolve` decides it directly.
 */
export class MergeQueue {
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly log: Logger;
  private settings: MemorySettings;
  private readonly dispatch: MergeDispatch;
  private readonly loop: PollLoop;

  constructor(opts: { store: Store; clock: Clock; log: Logger; settings: MemorySettings; dispatch: MergeDispatch }) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.log = opts.log;
    this.settings = opts.settings;
    this.dispatch = opts.dispatch;
    this.loop = new PollLoop({ name: 'memory merge', clock: opts.clock, log: opts.log, pass: () => this.pass(), retryMs: (n) => Math.min(30_000, 1_000 * 2 ** Math.min(n, 5)) });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  reconfigure(settings: MemorySettings): void {
    this.settings = settings;
  }

  /** One pass over the open `agent` and `human` conflicts; returns how many moved a step. */
  async passOnce(): Promise<number> {
    let moved = 0;
    for (const c of await this.store.memory.conflicts({ state: 'open', strategy: 'agent', limit: BATCH })) if (await this.stepAgent(c)) moved++;
    for (const c of await this.store.memory.conflicts({ state: 'open', strategy: 'human', limit: BATCH })) if (await this.stepHuman(c)) moved++;
    return moved;
  }

  private async pass(): Promise<number> {
    return (await this.passOnce()) > 0 ? 0 : IDLE_MS;
  }

  private async stepAgent(c: MemoryConflict): Promise<boolean> {
    const now = this.clock.now();
    if (c.mergeRun === null) {
      const agent = scopePolicyFor(this.settings, c.scope).mergeAgent;
      if (!agent) {
        this.log.warn(`memory conflict ${c.id}: scope ${c.scope} names no mergeAgent any more; it waits (resolve it with spine memory conflicts resolve)`);
        return false;
      }
      const [base, current] = await this.versionsOf(c, [c.expectedVersion, c.currentVersion]);
      const input: Json = { conflict: c.id, scope: c.scope, key: c.key, base: base?.value ?? null, current: current?.value ?? null, candidate: c.proposed, candidateText: c.proposedText };
      const runId = await this.dispatch({ agent, tenant: c.tenant, input, idempotencyKey: `memory-conflict:${c.id}` });
      await this.store.memory.attachConflict(c.id, { mergeRun: runId });
      return true;
    }
    const run = await this.store.runs.get(c.mergeRun);
    if (!run || run.state === 'running') return false;
    const actor = `agent:${run.agent}`;
    const how = `merge run ${run.id}`;
    const out = run.output;
    if (run.state !== 'succeeded' || out === null || typeof out !== 'object' || Array.isArray(out) || !('value' in out)) {
      const why = run.state === 'succeeded' ? 'answered no {value}' : `${run.state}${run.error ? `: ${run.error.message}` : ''}`;
      await this.store.memory.resolveConflict(c.id, { kind: 'reject', actor, how: `${how} ${why}` }, now);
      return true;
    }
    const text = typeof out.text === 'string' ? out.text : c.proposedText;
    const r = await this.store.memory.resolveConflict(
      c.id,
      {
        kind: 'write',
        value: out.value ?? null,
        text,
        expectedVersion: c.currentVersion,
        trust: 'agent',
        writtenBy: { agent: run.agent, run: run.id, task: run.rootTaskId, turn: null, actor },
        embed: this.settings.embedder !== null && text !== null,
        actor,
        how,
      },
      now,
    );
    // The fact moved while the agent merged: its merge is of stale values, so the conflict is rejected, not retried forever.
    if (r.outcome?.kind === 'conflict') await this.store.memory.resolveConflict(c.id, { kind: 'reject', actor, how: `${how}: the fact moved to version ${r.outcome.current?.version ?? 0} while merging` }, now);
    return true;
  }

  private async stepHuman(c: MemoryConflict): Promise<boolean> {
    const now = this.clock.now();
    if (c.approvalId === null) {
      const [current] = await this.versionsOf(c, [c.currentVersion]);
      await this.store.memory.openConflictApproval(
        c.id,
        {
          action: { type: 'memory.conflict', conflict: c.id, scope: c.scope, key: c.key, options: conflictOptions(c, current ?? null) },
          reason: `${c.scope} ${c.key}: two writes from version ${c.expectedVersion}. Approve to write option 1 (the write that lost its race), approve with reason "2" to keep version ${c.currentVersion}, deny to reject the write`,
          approvers: 'operator',
        },
        now,
      );
      return true;
    }
    const a = await this.store.approvals.get(c.approvalId);
    if (!a || a.state === 'pending') return false;
    const actor = a.decidedBy ?? a.state;
    if (a.state !== 'approved') {
      await this.store.memory.resolveConflict(c.id, { kind: 'reject', actor, how: `approval ${a.id} ${a.state}` }, now);
      return true;
    }
    const pick = pickOf(a.decisionReason) ?? 1;
    await resolveByPick(this.store, this.settings, c, pick, actor, `approval ${a.id}, option ${pick}`, now);
    return true;
  }

  /** The conflict's fact at these versions (null for 0 or one not found), from one read of its history. */
  private async versionsOf(c: MemoryConflict, versions: readonly number[]): Promise<Array<FactVersion | null>> {
    if (versions.every((v) => v <= 0)) return versions.map(() => null);
    const all = await this.store.memory.history({ tenant: c.tenant, grants: [{ exact: c.scope }], scope: c.scope, key: c.key });
    return versions.map((v) => all.find((f) => f.version === v) ?? null);
  }
}

/** The envelope that hands a conflict to its merge agent: channel `memory`, deduplicated by the conflict. */
export function mergeEnvelope(idempotencyKey: string, input: Json): Envelope {
  return {
    channel: 'memory',
    account: 'default',
    peer: { kind: 'dm', id: 'merge-queue' },
    parentPeer: null,
    sender: { id: 'memory' },
    thread: null,
    text: '',
    data: input,
    idempotencyKey,
    replyTo: null,
    input,
  };
}

/** The candidates a person chooses between, numbered from 1. */
export function conflictOptions(c: MemoryConflict, current: FactVersion | null): Json[] {
  return [
    { option: 1, what: 'the write that lost its race', value: c.proposed, text: c.proposedText, by: c.writtenBy.agent ?? c.writtenBy.actor },
    { option: 2, what: `keep version ${c.currentVersion}`, value: current?.value ?? null, text: current?.text ?? null, by: current ? (current.writtenBy.agent ?? current.writtenBy.actor) : null },
  ];
}

export const CONFLICT_OPTIONS = 2;

/** `2`, `option 2`, `pick #2` → 2; anything else → null. */
export function pickOf(reason: string | null): number | null {
  const m = /^\s*(?:option|choice|pick)?\s*#?(\d+)\b/i.exec(reason ?? '');
  const n = m ? Number(m[1]) : NaN;
  return n >= 1 && n <= CONFLICT_OPTIONS ? n : null;
}

/** Option 1 writes the losing write over the current version (compare-and-set on what is live now); option 2 keeps the current one. */
export async function resolveByPick(store: Store, settings: MemorySettings, c: MemoryConflict, pick: number, actor: string, how: string, now: number) {
  if (pick === 2) return store.memory.resolveConflict(c.id, { kind: 'keep', actor, how }, now);
  return writeResolution(store, settings, c, c.proposed, c.proposedText, actor, how, now);
}

/** Writes a person's chosen value over whatever is live now (they decided knowing it), compare-and-set against a concurrent write. */
export async function writeResolution(store: Store, settings: MemorySettings, c: MemoryConflict, value: Json, text: string | null, actor: string, how: string, now: number) {
  const live = await store.memory.get({ tenant: c.tenant, grants: [{ exact: c.scope }], scope: c.scope, key: c.key }, now);
  return store.memory.resolveConflict(
    c.id,
    {
      kind: 'write',
      value,
      text,
      expectedVersion: live ? live.version : 0,
      trust: 'owner',
      writtenBy: { agent: null, run: null, task: null, turn: null, actor },
      embed: settings.embedder !== null && text !== null,
      actor,
      how,
    },
    now,
  );
}
