-- Claims that leave out some kinds (a worker whose kind is at its limit, say webhook ingests
-- during a burst) look the other kinds up one by one here, instead of walking `jobs_claim`
-- over the backlog of the kinds left out: that walk visited every row of the backlog, on every
-- claim (measured: ~1,900 rows and ~2 ms per claim, the largest share of PostgreSQL's time in
-- the inbound benchmark). See `JobQueue::claim_among`.
CREATE INDEX jobs_claim_kind ON jobs (kind, priority DESC, run_at) WHERE state = 'queued';
