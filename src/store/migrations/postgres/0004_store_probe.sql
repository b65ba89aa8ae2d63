-- PostgreSQL dialect of ../sqlite/0004_store_probe.sql: the same tables, columns and indexes.
-- BIGINT for INTEGER (ms times and counters). test/postgres-schema.test.ts keeps the two in step.

-- Readiness: the row `checkWritable` rewrites to prove the store can commit now
-- (disk full, read-only, I/O errors and lost connections make it fail).

CREATE TABLE store_probe (
  id BIGINT PRIMARY KEY,
  written_at BIGINT NOT NULL
);
