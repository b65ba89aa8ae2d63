-- The merge queue (src/memory/merge-queue.ts) looks for open conflicts by strategy, in
-- every tenant, once a second while idle: without this index each look scanned the
-- whole table, resolved conflicts included (memory_conflicts_state leads with tenant).

CREATE INDEX memory_conflicts_queue ON memory_conflicts (state, strategy, created_at, id);
