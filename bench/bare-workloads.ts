/**
 * W1–W3 on a bare task table (bench/bare.ts), shaped like Spine's (bench/workloads.ts):
 * W1 is one durable step after another, W2 N no-op tasks through `concurrency`
 * workers, W3 a parent that fans out to 100 children and is queued again when the
 * last one is done.
 */
import { bareWorkers, type BareQueue } from './bare.ts';
import { round, summarize, type Summary } from './stats.ts';

const TURNS = 10;

/** Per-step commit time: one run at a time, ten steps each (nine steps and the completion). */
export async function bareW1(queue: BareQueue, runs: number): Promise<{ perTurnMs: Summary }> {
  const gaps: number[] = [];
  for (let r = 0; r < runs + 5; r++) {
    const [id] = await queue.insert(['steps']);
    const task = await queue.claim();
    if (!task || task.id !== id) throw new Error('bare W1: claimed the wrong task');
    let last = performance.now();
    for (let t = 1; t <= TURNS; t++) {
      if (t < TURNS) await queue.step(task.id);
      else await queue.complete(task.id, null);
      const now = performance.now();
      if (r >= 5) gaps.push(now - last); // the first five runs warm up
      last = now;
    }
  }
  return { perTurnMs: summarize(gaps) };
}

export interface BareW2 {
  tasks: number;
  endToEndPerSec: number;
  processPerSec: number;
  roundTripsPerTask?: number;
}

export async function bareW2(queue: BareQueue, tasks: number, concurrency: number): Promise<BareW2> {
  const t0 = performance.now();
  // Enqueued in bulk, the way a peer's addBulk/insert does it.
  for (let i = 0; i < tasks; i += 500) await queue.insert(Array.from({ length: Math.min(500, tasks - i) }, () => 'noop'));
  const t1 = performance.now();
  const trips1 = queue.roundTrips();
  let done = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((r) => (allDone = r));
  const workers = bareWorkers(queue, concurrency, async (task) => {
    await queue.complete(task.id, null);
    if (++done === tasks) allDone();
  });
  await finished;
  const t2 = performance.now();
  const trips2 = queue.roundTrips();
  await workers.stop();
  return {
    tasks,
    endToEndPerSec: round((tasks / (t2 - t0)) * 1000, 0),
    processPerSec: round((tasks / (t2 - t1)) * 1000, 0),
    ...(trips1 !== null && trips2 !== null ? { roundTripsPerTask: round((trips2 - trips1) / tasks, 2) } : {}),
  };
}

/** Submit → parent succeeded, for a parent fanning out to `children` and joining them. */
export async function bareW3(queue: BareQueue, reps: number, children: number, concurrency: number): Promise<{ totalMs: Summary }> {
  const waiting = new Map<number, () => void>();
  const early = new Set<number>(); // finished before anyone waited
  const workers = bareWorkers(queue, concurrency, async (task) => {
    if (task.input === 'fan' && task.step === 0) {
      await queue.fanOut(task.id, children);
      workers.wake();
    } else if (task.input === 'fan') {
      await queue.complete(task.id, null);
      const w = waiting.get(task.id);
      if (w) w();
      else early.add(task.id);
    } else {
      await queue.complete(task.id, task.parent);
      workers.wake(); // the last child queues its parent again
    }
  });
  const total: number[] = [];
  try {
    for (let i = 0; i < reps + 2; i++) {
      const t0 = performance.now();
      const [id] = await queue.insert(['fan']);
      await new Promise<void>((resolve) => {
        if (early.delete(id!)) return resolve();
        waiting.set(id!, resolve);
        workers.wake();
      });
      waiting.delete(id!);
      if (i >= 2) total.push(performance.now() - t0);
    }
  } finally {
    await workers.stop();
  }
  return { totalMs: summarize(total) };
}
