-- Team chat: channels (public, private, DMs and group DMs), members with their read markers and
-- lock flag, messages with threads, quotes, forwards, pins, mentions and reactions (full-text
-- search through a tsvector column), uploaded attachments with per-user view-once records.
CREATE TABLE chat_channels (
    id               UUID PRIMARY KEY,
    org_id           UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('public', 'private', 'dm', 'group_dm')),
    name             TEXT,
    -- Lower-cased name: names are unique per organisation ignoring case (NULL for DMs).
    name_key         TEXT,
    topic            TEXT,
    -- The sorted member ids of a DM or group DM: the same people always get the same DM.
    dm_key           TEXT,
    archived         BOOLEAN NOT NULL DEFAULT FALSE,
    disappearing     TEXT NOT NULL DEFAULT 'off' CHECK (disappearing IN ('off', '24h', '7d', '90d')),
    created_by       UUID NOT NULL,
    last_activity_at BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    CONSTRAINT chat_channels_org_name_key UNIQUE (org_id, name_key),
    CONSTRAINT chat_channels_org_dm_key UNIQUE (org_id, dm_key)
);
CREATE INDEX chat_channels_org_kind_idx ON chat_channels (org_id, kind, name_key);

CREATE TABLE chat_members (
    channel_id   UUID NOT NULL REFERENCES chat_channels(id) ON DELETE CASCADE,
    user_id      UUID NOT NULL,
    org_id       UUID NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    joined_at    BIGINT NOT NULL,
    -- The read marker: the (created_at, id) of the last message read.
    last_read_at BIGINT,
    last_read_id UUID,
    muted        BOOLEAN NOT NULL DEFAULT FALSE,
    locked       BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX chat_members_user_idx ON chat_members (org_id, user_id);

CREATE TABLE chat_messages (
    id               UUID NOT NULL,
    org_id           UUID NOT NULL,
    channel_id       UUID NOT NULL REFERENCES chat_channels(id) ON DELETE CASCADE,
    author_id        UUID NOT NULL,
    text             TEXT NOT NULL,
    mentions         JSONB NOT NULL DEFAULT '[]',
    mentions_channel BOOLEAN NOT NULL DEFAULT FALSE,
    thread_id        UUID,
    reply_count      BIGINT NOT NULL DEFAULT 0,
    last_reply_at    BIGINT,
    quote_id         UUID,
    forwarded_from   JSONB,
    pinned_at        BIGINT,
    edited_at        BIGINT,
    deleted          BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at       BIGINT,
    -- Exact lexemes the service builds (array_to_tsvector), queried with prefix `:*` terms.
    search           TSVECTOR NOT NULL DEFAULT ''::tsvector,
    created_at       BIGINT NOT NULL,
    CONSTRAINT chat_messages_id_key UNIQUE (id)
);
CREATE INDEX chat_messages_channel_idx ON chat_messages (channel_id, created_at, id);
CREATE INDEX chat_messages_thread_idx ON chat_messages (thread_id, created_at, id) WHERE thread_id IS NOT NULL;
CREATE INDEX chat_messages_expires_idx ON chat_messages (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX chat_messages_pinned_idx ON chat_messages (channel_id, pinned_at) WHERE pinned_at IS NOT NULL;
CREATE INDEX chat_messages_search_idx ON chat_messages USING GIN (search);

-- Who a message mentions (`@[Name](user:…)`, and every member for `@channel`/`@here`):
-- the mention counts per channel read it.
CREATE TABLE chat_mentions (
    message_id UUID NOT NULL REFERENCES chat_messages(id) ON DELETE CASCADE,
    user_id    UUID NOT NULL,
    channel_id UUID NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX chat_mentions_user_idx ON chat_mentions (channel_id, user_id);

CREATE TABLE chat_reactions (
    message_id UUID NOT NULL REFERENCES chat_messages(id) ON DELETE CASCADE,
    emoji      TEXT NOT NULL,
    user_id    UUID NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

-- Uploaded files; `message_id` is set when a message uses them (each is used once).
CREATE TABLE chat_attachments (
    id           UUID PRIMARY KEY,
    org_id       UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    uploader_id  UUID NOT NULL,
    message_id   UUID REFERENCES chat_messages(id) ON DELETE CASCADE,
    position     BIGINT NOT NULL DEFAULT 0,
    kind         TEXT NOT NULL CHECK (kind IN ('image', 'audio', 'voice', 'file')),
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    width        BIGINT,
    height       BIGINT,
    duration_ms  BIGINT,
    waveform     JSONB,
    view_once    BOOLEAN NOT NULL DEFAULT FALSE,
    blob_key     TEXT NOT NULL,
    thumb_key    TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX chat_attachments_message_idx ON chat_attachments (message_id, position);
-- A forwarded file shares its blob with the original: a blob is deleted when no row uses it.
CREATE INDEX chat_attachments_blob_idx ON chat_attachments (blob_key);

CREATE TABLE chat_attachment_views (
    attachment_id UUID NOT NULL REFERENCES chat_attachments(id) ON DELETE CASCADE,
    user_id       UUID NOT NULL,
    viewed_at     BIGINT NOT NULL,
    PRIMARY KEY (attachment_id, user_id)
);
