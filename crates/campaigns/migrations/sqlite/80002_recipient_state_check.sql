-- SQLite checks a constraint written `state IN (...)` by building a temporary table for each
-- row it writes: about 1.2 µs per row, a second and a half per million recipients on the
-- snapshot and again on every change of state. The same rule as a chain of `=` costs nothing
-- measurable. SQLite cannot alter a CHECK constraint: the table is rebuilt with the same rows,
-- keys and indexes.
CREATE TABLE campaign_recipients_new (
    campaign_id         BLOB NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    seq                 INTEGER NOT NULL,
    contact_id          BLOB NOT NULL,
    name                TEXT NOT NULL,
    address             TEXT,
    address_kind        TEXT,
    -- pending → sending (claimed, `lease_until`) → sent → delivered → read; or failed /
    -- skipped. `unconfirmed`: a lease ran out mid-send (the worker stopped): the provider's
    -- reports settle it, or after a grace period it is sent again (WhatsApp) or failed.
    state               TEXT NOT NULL CHECK (state = 'pending' OR state = 'sending'
        OR state = 'unconfirmed' OR state = 'sent' OR state = 'delivered' OR state = 'read'
        OR state = 'failed' OR state = 'skipped'),
    attempts            INTEGER NOT NULL DEFAULT 0,
    lease_until         INTEGER,
    provider_message_id TEXT,
    error_code          INTEGER,
    error_title         TEXT,
    skip_reason         TEXT,
    sent_at             INTEGER,
    delivered_at        INTEGER,
    read_at             INTEGER,
    replied_at          INTEGER,
    failed_at           INTEGER,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, seq),
    CONSTRAINT campaign_recipients_contact_key UNIQUE (campaign_id, contact_id)
) WITHOUT ROWID;
INSERT INTO campaign_recipients_new (campaign_id, seq, contact_id, name, address, address_kind, state, attempts, lease_until,
    provider_message_id, error_code, error_title, skip_reason, sent_at, delivered_at, read_at,
    replied_at, failed_at, updated_at)
SELECT campaign_id, seq, contact_id, name, address, address_kind, state, attempts, lease_until,
    provider_message_id, error_code, error_title, skip_reason, sent_at, delivered_at, read_at,
    replied_at, failed_at, updated_at
FROM campaign_recipients;
DROP TABLE campaign_recipients;
ALTER TABLE campaign_recipients_new RENAME TO campaign_recipients;
CREATE INDEX campaign_recipients_state_idx ON campaign_recipients (campaign_id, state, seq);
CREATE INDEX campaign_recipients_provider_idx ON campaign_recipients (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX campaign_recipients_reply_idx ON campaign_recipients (contact_id, sent_at)
    WHERE sent_at IS NOT NULL AND replied_at IS NULL;
-- Replies are few: counting them must not read every row of a million-recipient campaign.
CREATE INDEX campaign_recipients_replied_idx ON campaign_recipients (campaign_id)
    WHERE replied_at IS NOT NULL;
