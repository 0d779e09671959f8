-- An import is written by runs of its job, each taking batches for a while before it queues
-- the next run. `run_from` is where the newest run was queued: a job that carries another
-- offset is stale (a duplicate, or a run that already handed over) and does nothing, while a
-- retried try of the current run resumes from the checkpoint (`next_byte`).
ALTER TABLE contact_imports ADD COLUMN run_from BIGINT NOT NULL DEFAULT 0;
-- Imports in flight were queued one batch per job: their current job starts at the checkpoint.
UPDATE contact_imports SET run_from = next_byte WHERE status IN ('queued', 'running');

-- The import (and line of its file) that created an identity. A later batch of the same import
-- finds a duplicate within the file through the identity itself; `contact_import_keys` now only
-- holds the keys a row accepted without creating an identity (rows that update or skip an
-- existing contact), so a file of new contacts writes none.
ALTER TABLE contact_identities ADD COLUMN import_id BLOB;
ALTER TABLE contact_identities ADD COLUMN import_line INTEGER;
