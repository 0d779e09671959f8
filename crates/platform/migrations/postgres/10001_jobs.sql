-- Durable job queue (see crates/platform/src/jobs/mod.rs for the claim, lease and retry mechanics).
CREATE TABLE jobs (
    id           UUID    PRIMARY KEY NOT NULL,
    org_id       UUID,
    kind         TEXT    NOT NULL,
    payload      JSONB   NOT NULL,
    -- queued | running | succeeded | dead | cancelled (a failed try that will retry is queued again)
    state        TEXT    NOT NULL DEFAULT 'queued',
    priority     INTEGER NOT NULL DEFAULT 0,
    run_at       BIGINT  NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    lost_count   INTEGER NOT NULL DEFAULT 0,
    dedupe_key   TEXT,
    locked_by    TEXT,
    locked_until BIGINT,
    started_at   BIGINT,
    last_error   TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    finished_at  BIGINT
)
-- A queue table churns: every claim and completion writes a new row version (state is in the
-- partial index predicates, so these updates are never HOT) and leaves dead entries at the head
-- of `jobs_claim`.
-- - fillfactor 70: room on each page for the next versions of its rows, so a claim or a
--   completion writes the new version on the same page (dead ones are pruned on access)
--   instead of at the end of the table, which the enqueues are extending at the same time
--   (measured: ~8k -> ~11.6k jobs/s end to end at 200k jobs);
-- - vacuum and analyze after ~1 % of change instead of the default 20 % / 10 %, with a 10x
--   cost limit. (How often autovacuum looks is still the server-wide `autovacuum_naptime`,
--   1 min by default; claims do not depend on it, see `JobQueue::claim`.)
WITH (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.01,
    autovacuum_analyze_threshold = 1000,
    autovacuum_vacuum_cost_limit = 2000
);

-- Claim order: only queued rows are indexed, so finished history does not slow claims.
CREATE INDEX jobs_claim ON jobs (priority DESC, run_at) WHERE state = 'queued';
-- Reaper and heartbeats: running rows by lease expiry.
CREATE INDEX jobs_lease ON jobs (locked_until) WHERE state = 'running';
-- Dead-letter listing and stats.
CREATE INDEX jobs_dead ON jobs (kind, finished_at) WHERE state = 'dead';
-- At most one unfinished job per (kind, dedupe_key).
CREATE UNIQUE INDEX jobs_dedupe ON jobs (kind, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running');
-- Purging finished history.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('succeeded', 'cancelled');

CREATE TABLE job_attempts (
    -- No foreign key to jobs (id): the check costs a lookup (and on PostgreSQL a row lock)
    -- per attempt on the hot completion path. Rows are written only by the queue, after the
    -- job's own row, and `JobQueue::purge_finished` deletes them with their job.
    job_id      UUID    NOT NULL,
    attempt     INTEGER NOT NULL,
    worker_id   TEXT    NOT NULL,
    started_at  BIGINT  NOT NULL,
    finished_at BIGINT  NOT NULL,
    -- succeeded | retry | failed | dead | lost
    outcome     TEXT    NOT NULL,
    error       TEXT,
    latency_ms  BIGINT  NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
