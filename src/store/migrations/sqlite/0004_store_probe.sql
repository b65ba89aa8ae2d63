-- Readiness: the row `checkWritable` rewrites to prove the store can commit now
-- (disk full, read-only, I/O errors and lost connections make it fail).

CREATE TABLE store_probe (
  id INTEGER PRIMARY KEY,
  written_at INTEGER NOT NULL
);
