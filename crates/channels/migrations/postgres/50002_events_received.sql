-- Webhook events stored before their ingest jobs were queued: `received` (state is now
-- received | pending | processed | failed). Only the SQLite intake stores them today; the
-- index keeps the sweep that looks for them cheap on both backends.
CREATE INDEX channel_events_received_idx ON channel_events (received_at) WHERE state = 'received';
