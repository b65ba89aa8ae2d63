-- Shared memory, vectors and the merge queue's last two strategies (docs/memory.md).

-- One embedding per fact version with text, of the configured embedder's dimensions
-- (a change of dimensions re-embeds; rows of other dimensions are never compared).
-- SQLite keeps a float32 blob (sqlite-vec reads it as is; a blob keeps its type in a
-- TEXT column); PostgreSQL keeps pgvector's text form '[1,2,3]', cast at query time,
-- so the table needs no extension to exist.
CREATE TABLE memory_embeddings (
  version_id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  dims BIGINT NOT NULL,
  embedding TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX memory_embeddings_dims ON memory_embeddings (tenant, dims);

-- Versions waiting for their embedding: the embedder's durable to-do list, filled
-- in the write's own transaction (a crash loses none) and emptied as it embeds.
CREATE TABLE memory_embed_queue (
  version_id TEXT PRIMARY KEY,
  created_at BIGINT NOT NULL
);
CREATE INDEX memory_embed_queue_order ON memory_embed_queue (created_at);

-- `human`: the approval whose options are the candidates; `agent`: the merge agent's run.
ALTER TABLE memory_conflicts ADD COLUMN approval_id TEXT;
ALTER TABLE memory_conflicts ADD COLUMN merge_run TEXT;
