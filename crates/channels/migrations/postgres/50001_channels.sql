-- Connected provider accounts (WhatsApp Cloud API numbers, Telegram bots, the Sandbox) and the
-- raw webhook events they received, kept as the provider sent them until processed.
CREATE TABLE channels (
    id                  UUID PRIMARY KEY,
    org_id              UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind                TEXT NOT NULL CHECK (kind IN ('whatsapp', 'telegram', 'sandbox')),
    name                TEXT NOT NULL,
    enabled             BOOLEAN NOT NULL DEFAULT TRUE,
    -- Non-secret settings (JSON object, per kind).
    config              TEXT NOT NULL,
    -- Secret settings (access tokens, app secrets, bot tokens): AEAD ciphertext, never returned.
    secrets             TEXT NOT NULL,
    -- The provider's id of the account (WhatsApp phone number id, Telegram bot id): one live
    -- channel per account and organisation.
    external_id         TEXT,
    verify_token        TEXT,
    messages_per_second BIGINT NOT NULL,
    health_state        TEXT NOT NULL DEFAULT 'unknown' CHECK (health_state IN ('unknown', 'healthy', 'unhealthy')),
    health_reason       TEXT,
    health_at           BIGINT,
    -- Telegram long polling: the next getUpdates offset (last confirmed update id + 1).
    poll_offset         BIGINT,
    deleted_at          BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX channels_org_idx ON channels (org_id, created_at) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX channels_external_idx ON channels (org_id, kind, external_id)
    WHERE deleted_at IS NULL AND external_id IS NOT NULL;

CREATE TABLE channel_events (
    id          UUID PRIMARY KEY,
    org_id      UUID NOT NULL,
    channel_id  UUID NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    -- The request body exactly as received (or the synthetic event of the Sandbox).
    body        BYTEA NOT NULL,
    -- pending | processed | failed
    state       TEXT NOT NULL DEFAULT 'pending',
    items       BIGINT,
    error       TEXT,
    received_at BIGINT NOT NULL,
    processed_at BIGINT
);
CREATE INDEX channel_events_channel_idx ON channel_events (channel_id, received_at);
