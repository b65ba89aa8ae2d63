import type { SqlBackend } from './backend.ts';
import type { SqlParam } from './executor.ts';

/** A backend that runs a statement as its own transaction (PostgreSQL). */
export type StatementBackend = SqlBackend & { commitStatement: NonNullable<SqlBackend['commitStatement']> };

export interface BatcherOptions<I, R, O> {
  /** Statements in flight at once: the rest of the pool stays free for other work. */
  inFlight: number;
  /** Items one statement takes at most (a statement is started only for items no started statement will take). */
  most: number;
  /** Removes from the front of `queue` the items of one statement: one at least, `most` at most. */
  take(queue: I[]): I[];
  build(items: readonly I[]): { sql: string; params: SqlParam[] };
  /**
   * What became of each item of a statement, in order, given the rows it returned, or
   * null if it was refused or never sent (nothing was written), or the error that left
   * its outcome unknown. A throw fails every item of the statement with it.
   */
  settle(items: readonly I[], rows: R[] | null, err?: unknown): ReadonlyArray<O | Promise<O>>;
}

/**
 * The writes that callers of this process ask for while a statement waits for a
 * connection share the next one (the way SQLite's group commit shares a transaction):
 * thousands asked for at once wait here, not each for a pooled connection. A
 * statement is built when its connection is free, from the items queued by then, so
 * it carries everything asked for meanwhile and holds nothing while it waits.
 * Returns the function that queues an item and resolves to its outcome.
 */
export function statementBatcher<I extends object, R, O>(db: StatementBackend, opts: BatcherOptions<I, R, O>): (item: I) => Promise<O> {
  const queue: I[] = [];
  const waiting = new Map<I, { resolve: (o: O | Promise<O>) => void; reject: (err: unknown) => void }>();
  let inFlight = 0;
  /** Statements started whose items are not yet taken from the queue. */
  let unbuilt = 0;
  const settle = (items: I[], rows: R[] | null, err?: unknown): void => {
    let outcomes: ReadonlyArray<O | Promise<O>> | null = null;
    let failure: unknown = null;
    try {
      outcomes = opts.settle(items, rows, err);
    } catch (thrown) {
      failure = thrown;
    }
    items.forEach((item, i) => {
      const w = waiting.get(item)!;
      waiting.delete(item);
      if (outcomes) w.resolve(outcomes[i]!);
      else w.reject(failure);
    });
  };
  const pump = (): void => {
    while (inFlight < opts.inFlight && queue.length > unbuilt * opts.most) {
      inFlight++;
      unbuilt++;
      let taken: I[] | null = null;
      const take = (): I[] => {
        unbuilt--;
        taken = opts.take(queue);
        return taken;
      };
      // No connection came: the items it would have taken are told so (null), as if refused.
      db.commitStatement<R>(() => opts.build(take()))
        .then(
          (rows) => settle(taken ?? take(), rows),
          (err: unknown) => settle(taken ?? take(), null, err),
        )
        .finally(() => {
          inFlight--;
          pump();
        });
    }
  };
  return (item) =>
    new Promise<O>((resolve, reject) => {
      waiting.set(item, { resolve, reject });
      queue.push(item);
      pump();
    });
}
