/**
 * What this process last knew of the rows a turn's commit touches, so that a commit
 * can be one statement with no BEGIN or COMMIT (PostgreSQL: one round trip instead of
 * four; see commit-statement-sql.ts). Hints only: a stale one makes that statement
 * fail as a whole, and the commit then runs as an ordinary transaction that reads and
 * locks what it needs. Nothing here is ever trusted to be current.
 */

/** A stream's head: its last event's stream_seq and hash. */
export interface HeadHint {
  n: number;
  hash: string;
}

/** What the claim read of a task this process leased, for the commits of that lease. */
export interface TaskHint {
  leaseNo: number;
  runId: string;
  agent: string;
  /** The task's parent (null: it is its run's root). */
  parentId: string | null;
  /** Its run is in a session lane (finishing it moves the lane: not a single statement). */
  session: boolean;
  /** The run's agent, which its run.* events name. */
  runAgent: string;
}

/** A Map that forgets its oldest entries past `max`. */
class Bounded<K, V> {
  private readonly map = new Map<K, V>();
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  get(key: K): V | undefined {
    return this.map.get(key);
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as K);
  }
  delete(key: K): void {
    this.map.delete(key);
  }
  get size(): number {
    return this.map.size;
  }
}

/** Enough for a worker's leases and the streams of their runs, many times over. */
const MAX_HINTS = 4_096;

export class CommitHints {
  /** Audit stream heads as of this process's last commit (or read) that moved or saw them. */
  readonly heads = new Bounded<string, HeadHint>(MAX_HINTS);
  /** Tasks this process claimed, by id. */
  readonly tasks = new Bounded<string, TaskHint>(MAX_HINTS);
  /** Commits done as one statement, and those that fell back to a transaction. */
  readonly stats = { single: 0, fallbacks: 0 };

  /** Takes the heads a committed transaction left behind. */
  learnHeads(heads: ReadonlyMap<string, HeadHint>): void {
    for (const [stream, head] of heads) this.heads.set(stream, head);
  }

  /**
   * Takes, of the heads a committed transaction left behind, those of streams already
   * hinted: a write off the hot path (an effect's record, a decided turn) keeps the
   * hints of its task current without filling them with every stream it opens.
   */
  refreshHeads(heads: ReadonlyMap<string, HeadHint>): void {
    for (const [stream, head] of heads) if (this.heads.get(stream)) this.heads.set(stream, head);
  }

  forgetHeads(streams: Iterable<string>): void {
    for (const s of streams) this.heads.delete(s);
  }
}
