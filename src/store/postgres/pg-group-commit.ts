import type { SqlExecutor } from '../sql/executor.ts';

type Unit = {
  fn: (tx: SqlExecutor) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
};

/** A batch's COMMIT was sent and the connection broke: nothing may be retried, every unit gets this. */
export class BatchOutcomeUnknown extends Error {
  readonly failure: unknown;
  constructor(failure: unknown) {
    super('the batch outcome is unknown');
    this.failure = failure;
  }
}

export interface GroupCommitDeps {
  /** Runs every fn, in order, in one transaction; throws if any fails (then nothing committed), or BatchOutcomeUnknown. */
  runBatch(fns: ReadonlyArray<Unit['fn']>): Promise<unknown[]>;
  /** Runs one fn in a transaction of its own (with the backend's retries). */
  runAlone<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** What a unit whose batch outcome is unknown is rejected with. */
  unknownOutcome(err: BatchOutcomeUnknown): unknown;
  /** Most units in one transaction. */
  maxBatch: number;
  /** Most batches in flight at once (each holds one pooled connection). */
  maxInFlight: number;
}

/**
 * A pipelined committer for PostgreSQL, like the SQLite backend's group commit and
 * graphile-worker's batched completions: the transactions this process asks for while
 * its batches are in flight (or in one event-loop turn) share one BEGIN…COMMIT — one
 * WAL flush and two round trips for the lot instead of per unit.
 *
 * Per-unit isolation without savepoints (each one would cost two more round trips):
 * the batch is optimistic. If any unit fails, the whole batch rolls back and each of
 * its units runs again alone, so one unit's failure reaches only its own caller. The
 * SqlBackend contract already lets a transaction's fn run more than once.
 */
export class GroupCommitter {
  private readonly deps: GroupCommitDeps;
  private readonly queue: Unit[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(deps: GroupCommitDeps) {
    this.deps = deps;
  }

  submit<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.deps.maxInFlight) return;
    this.scheduled = true;
    // Units asked for in this turn of the event loop join the same batch.
    setImmediate(() => {
      this.scheduled = false;
      while (this.queue.length > 0 && this.inFlight < this.deps.maxInFlight) {
        const batch = this.queue.splice(0, this.deps.maxBatch);
        this.inFlight++;
        void this.run(batch).finally(() => {
          this.inFlight--;
          if (this.queue.length > 0) this.schedule();
        });
      }
    });
  }

  private async run(batch: Unit[]): Promise<void> {
    if (batch.length === 1) {
      const [unit] = batch as [Unit];
      await this.deps.runAlone(unit.fn).then(unit.resolve, unit.reject);
      return;
    }
    let values: unknown[];
    try {
      values = await this.deps.runBatch(batch.map((u) => u.fn));
    } catch (err) {
      if (err instanceof BatchOutcomeUnknown) {
        const failure = this.deps.unknownOutcome(err);
        for (const u of batch) u.reject(failure);
        return;
      }
      // Rolled back: each unit alone, so a failing one fails only itself.
      await Promise.all(batch.map((u) => this.deps.runAlone(u.fn).then(u.resolve, u.reject)));
      return;
    }
    batch.forEach((u, i) => u.resolve(values[i]));
  }
}
