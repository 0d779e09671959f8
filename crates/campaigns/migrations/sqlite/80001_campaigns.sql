-- Campaigns: one template sent to an audience on one channel. At launch the audience is
-- snapshotted into `campaign_recipients` (one row per contact, unique per campaign), and
-- dispatchers claim pending rows with a lease, send, and record each outcome on its row.
CREATE TABLE campaigns (
    id                BLOB PRIMARY KEY,
    org_id            BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    channel_id        BLOB NOT NULL,
    template_id       BLOB,
    name              TEXT NOT NULL,
    variables         TEXT NOT NULL DEFAULT '{}',
    audience          TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled', 'failed')),
    pause_reason      TEXT,
    scheduled_at      INTEGER,
    time_zone         TEXT,
    failure_threshold REAL NOT NULL DEFAULT 0.2,
    total             INTEGER NOT NULL DEFAULT 0,
    snapshot_at       INTEGER,
    created_by        BLOB,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    launched_at       INTEGER,
    completed_at      INTEGER
);
CREATE INDEX campaigns_org_idx ON campaigns (org_id, created_at);
CREATE INDEX campaigns_template_idx ON campaigns (template_id);

CREATE TABLE campaign_recipients (
    campaign_id         BLOB NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    seq                 INTEGER NOT NULL,
    contact_id          BLOB NOT NULL,
    name                TEXT NOT NULL,
    address             TEXT,
    address_kind        TEXT,
    -- pending → sending (claimed, `lease_until`) → sent → delivered → read; or failed /
    -- skipped. `unconfirmed`: a lease ran out mid-send (the worker stopped): the provider's
    -- reports settle it, or after a grace period it is sent again (WhatsApp) or failed.
    state               TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'unconfirmed', 'sent', 'delivered', 'read', 'failed', 'skipped')),
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
CREATE INDEX campaign_recipients_state_idx ON campaign_recipients (campaign_id, state, seq);
CREATE INDEX campaign_recipients_provider_idx ON campaign_recipients (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX campaign_recipients_reply_idx ON campaign_recipients (contact_id, sent_at)
    WHERE sent_at IS NOT NULL AND replied_at IS NULL;
-- Replies are few: counting them must not read every row of a million-recipient campaign.
CREATE INDEX campaign_recipients_replied_idx ON campaign_recipients (campaign_id)
    WHERE replied_at IS NOT NULL;
