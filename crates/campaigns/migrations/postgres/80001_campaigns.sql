-- Campaigns: one template sent to an audience on one channel. At launch the audience is
-- snapshotted into `campaign_recipients` (one row per contact, unique per campaign), and
-- dispatchers claim pending rows with a lease, send, and record each outcome on its row.
CREATE TABLE campaigns (
    id                UUID PRIMARY KEY,
    org_id            UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    channel_id        UUID NOT NULL,
    template_id       UUID,
    name              TEXT NOT NULL,
    variables         TEXT NOT NULL DEFAULT '{}',
    audience          TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled', 'failed')),
    pause_reason      TEXT,
    scheduled_at      BIGINT,
    time_zone         TEXT,
    failure_threshold DOUBLE PRECISION NOT NULL DEFAULT 0.2,
    total             BIGINT NOT NULL DEFAULT 0,
    snapshot_at       BIGINT,
    created_by        UUID,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    launched_at       BIGINT,
    completed_at      BIGINT
);
CREATE INDEX campaigns_org_idx ON campaigns (org_id, created_at);
CREATE INDEX campaigns_template_idx ON campaigns (template_id);

CREATE TABLE campaign_recipients (
    campaign_id         UUID NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    seq                 BIGINT NOT NULL,
    contact_id          UUID NOT NULL,
    name                TEXT NOT NULL,
    address             TEXT,
    address_kind        TEXT,
    -- pending → sending (claimed, `lease_until`) → sent → delivered → read; or failed /
    -- skipped. `unconfirmed`: a lease ran out mid-send (the worker stopped): the provider's
    -- reports settle it, or after a grace period it is sent again (WhatsApp) or failed.
    state               TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'unconfirmed', 'sent', 'delivered', 'read', 'failed', 'skipped')),
    attempts            BIGINT NOT NULL DEFAULT 0,
    lease_until         BIGINT,
    provider_message_id TEXT,
    error_code          BIGINT,
    error_title         TEXT,
    skip_reason         TEXT,
    sent_at             BIGINT,
    delivered_at        BIGINT,
    read_at             BIGINT,
    replied_at          BIGINT,
    failed_at           BIGINT,
    updated_at          BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, seq),
    CONSTRAINT campaign_recipients_contact_key UNIQUE (campaign_id, contact_id)
);
CREATE INDEX campaign_recipients_state_idx ON campaign_recipients (campaign_id, state, seq);
CREATE INDEX campaign_recipients_provider_idx ON campaign_recipients (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX campaign_recipients_reply_idx ON campaign_recipients (contact_id, sent_at)
    WHERE sent_at IS NOT NULL AND replied_at IS NULL;
-- Replies are few: counting them must not read every row of a million-recipient campaign.
CREATE INDEX campaign_recipients_replied_idx ON campaign_recipients (campaign_id)
    WHERE replied_at IS NOT NULL;
