-- The shared inbox: conversations (one per customer address and channel at a time), their
-- messages in both directions plus private notes, reactions, per-agent read markers, uploaded
-- attachments and canned responses.
CREATE TABLE inbox_conversations (
    id               UUID PRIMARY KEY,
    org_id           UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    channel_id       UUID NOT NULL,
    contact_id       UUID NOT NULL,
    -- The contact's name when the conversation last changed (for search; shown from contacts).
    contact_name     TEXT NOT NULL DEFAULT '',
    -- The provider address replies go to (JSON) and its key (phone, chat id, handle).
    recipient        TEXT NOT NULL,
    recipient_key    TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'pending', 'snoozed', 'resolved')),
    snoozed_until    BIGINT,
    priority         TEXT NOT NULL DEFAULT 'none' CHECK (priority IN ('none', 'low', 'medium', 'high', 'urgent')),
    assignee_id      UUID,
    team_id          UUID,
    labels           TEXT NOT NULL DEFAULT '[]',
    -- The customer's last message (opens the WhatsApp 24-hour window).
    last_inbound_at  BIGINT,
    last_message_id  UUID,
    last_activity_at BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    resolved_at      BIGINT
);
CREATE INDEX inbox_conversations_org_idx ON inbox_conversations (org_id, status, last_activity_at, id);
CREATE INDEX inbox_conversations_assignee_idx ON inbox_conversations (org_id, assignee_id, status, last_activity_at);
CREATE INDEX inbox_conversations_address_idx ON inbox_conversations (channel_id, recipient_key, created_at);
CREATE INDEX inbox_conversations_contact_idx ON inbox_conversations (org_id, contact_id);
CREATE INDEX inbox_conversations_snoozed_idx ON inbox_conversations (snoozed_until) WHERE status = 'snoozed';

CREATE TABLE inbox_messages (
    id                  UUID PRIMARY KEY,
    org_id              UUID NOT NULL,
    conversation_id     UUID NOT NULL REFERENCES inbox_conversations(id) ON DELETE CASCADE,
    channel_id          UUID NOT NULL,
    direction           TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    kind                TEXT NOT NULL,
    text                TEXT,
    content             TEXT,
    media               TEXT,
    reply_to_id         UUID,
    provider_message_id TEXT,
    status              TEXT NOT NULL,
    error               TEXT,
    author_id           UUID,
    private             BOOLEAN NOT NULL DEFAULT FALSE,
    purpose             TEXT,
    edited              BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          BIGINT NOT NULL,
    sent_at             BIGINT,
    delivered_at        BIGINT,
    read_at             BIGINT,
    updated_at          BIGINT NOT NULL
);
-- One row per provider message: redelivered webhooks insert nothing.
CREATE UNIQUE INDEX inbox_messages_provider_idx ON inbox_messages (channel_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX inbox_messages_conversation_idx ON inbox_messages (conversation_id, created_at, id);

CREATE TABLE inbox_reactions (
    message_id  UUID NOT NULL REFERENCES inbox_messages(id) ON DELETE CASCADE,
    -- 'customer' or the agent's user id
    actor       TEXT NOT NULL,
    emoji       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (message_id, actor)
);

CREATE TABLE inbox_reads (
    conversation_id UUID NOT NULL REFERENCES inbox_conversations(id) ON DELETE CASCADE,
    user_id         UUID NOT NULL,
    last_read_at    BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);

CREATE TABLE inbox_attachments (
    id              UUID PRIMARY KEY,
    org_id          UUID NOT NULL,
    conversation_id UUID NOT NULL REFERENCES inbox_conversations(id) ON DELETE CASCADE,
    blob_key        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    mime_type       TEXT NOT NULL,
    filename        TEXT NOT NULL,
    size            BIGINT NOT NULL,
    created_by      UUID NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE inbox_canned_responses (
    id          UUID PRIMARY KEY,
    org_id      UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    shortcut    TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_by  UUID,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT inbox_canned_shortcut_key UNIQUE (org_id, shortcut)
);
