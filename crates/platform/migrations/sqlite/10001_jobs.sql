-- Durable job queue (see crates/platform/src/jobs/mod.rs for the claim, lease and retry mechanics).
CREATE TABLE jobs (
    id           BLOB    PRIMARY KEY NOT NULL,
    org_id       BLOB,
    kind         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
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
    job_id      BLOB    NOT NULL,
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
