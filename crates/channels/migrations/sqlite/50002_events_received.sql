-- Webhook events the SQLite intake stored before their ingest jobs were queued: `received`
-- (state is now received | pending | processed | failed). A sweep finds those a crash left
-- without a job.
CREATE INDEX channel_events_received_idx ON channel_events (received_at) WHERE state = 'received';
