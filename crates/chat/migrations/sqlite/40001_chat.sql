-- Team chat: channels (public, private, DMs and group DMs), members with their read markers and
-- lock flag, messages with threads, quotes, forwards, pins, mentions and reactions, uploaded
-- attachments with per-user view-once records, and the FTS5 index over message text.
CREATE TABLE chat_channels (
    id               BLOB PRIMARY KEY,
    org_id           BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('public', 'private', 'dm', 'group_dm')),
    name             TEXT,
    -- Lower-cased name: names are unique per organisation ignoring case (NULL for DMs).
    name_key         TEXT,
    topic            TEXT,
    -- The sorted member ids of a DM or group DM: the same people always get the same DM.
    dm_key           TEXT,
    archived         INTEGER NOT NULL DEFAULT 0,
    disappearing     TEXT NOT NULL DEFAULT 'off' CHECK (disappearing IN ('off', '24h', '7d', '90d')),
    created_by       BLOB NOT NULL,
    last_activity_at INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    CONSTRAINT chat_channels_org_name_key UNIQUE (org_id, name_key),
    CONSTRAINT chat_channels_org_dm_key UNIQUE (org_id, dm_key)
);
CREATE INDEX chat_channels_org_kind_idx ON chat_channels (org_id, kind, name_key);

CREATE TABLE chat_members (
    channel_id   BLOB NOT NULL REFERENCES chat_channels(id) ON DELETE CASCADE,
    user_id      BLOB NOT NULL,
    org_id       BLOB NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    joined_at    INTEGER NOT NULL,
    -- The read marker: the (created_at, id) of the last message read.
    last_read_at INTEGER,
    last_read_id BLOB,
    muted        INTEGER NOT NULL DEFAULT 0,
    locked       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX chat_members_user_idx ON chat_members (org_id, user_id);

-- `rid` is the integer key the FTS5 rows point at.
CREATE TABLE chat_messages (
    rid              INTEGER PRIMARY KEY,
    id               BLOB NOT NULL,
    org_id           BLOB NOT NULL,
    channel_id       BLOB NOT NULL REFERENCES chat_channels(id) ON DELETE CASCADE,
    author_id        BLOB NOT NULL,
    text             TEXT NOT NULL,
    mentions         TEXT NOT NULL DEFAULT '[]',
    mentions_channel INTEGER NOT NULL DEFAULT 0,
    thread_id        BLOB,
    reply_count      INTEGER NOT NULL DEFAULT 0,
    last_reply_at    INTEGER,
    quote_id         BLOB,
    forwarded_from   TEXT,
    pinned_at        INTEGER,
    edited_at        INTEGER,
    deleted          INTEGER NOT NULL DEFAULT 0,
    expires_at       INTEGER,
    created_at       INTEGER NOT NULL,
    CONSTRAINT chat_messages_id_key UNIQUE (id)
);
CREATE INDEX chat_messages_channel_idx ON chat_messages (channel_id, created_at, id);
CREATE INDEX chat_messages_thread_idx ON chat_messages (thread_id, created_at, id) WHERE thread_id IS NOT NULL;
CREATE INDEX chat_messages_expires_idx ON chat_messages (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX chat_messages_pinned_idx ON chat_messages (channel_id, pinned_at) WHERE pinned_at IS NOT NULL;

-- One row per message (rowid = chat_messages.rid): the lower-cased words of its text.
CREATE VIRTUAL TABLE chat_messages_fts USING fts5(body, tokenize = 'unicode61 remove_diacritics 0');

-- Who a message mentions (`@[Name](user:…)`, and every member for `@channel`/`@here`):
-- the mention counts per channel read it.
CREATE TABLE chat_mentions (
    message_id BLOB NOT NULL REFERENCES chat_messages(id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL,
    channel_id BLOB NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX chat_mentions_user_idx ON chat_mentions (channel_id, user_id);

CREATE TABLE chat_reactions (
    message_id BLOB NOT NULL REFERENCES chat_messages(id) ON DELETE CASCADE,
    emoji      TEXT NOT NULL,
    user_id    BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

-- Uploaded files; `message_id` is set when a message uses them (each is used once).
CREATE TABLE chat_attachments (
    id           BLOB PRIMARY KEY,
    org_id       BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    uploader_id  BLOB NOT NULL,
    message_id   BLOB REFERENCES chat_messages(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL DEFAULT 0,
    kind         TEXT NOT NULL CHECK (kind IN ('image', 'audio', 'voice', 'file')),
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    width        INTEGER,
    height       INTEGER,
    duration_ms  INTEGER,
    waveform     TEXT,
    view_once    INTEGER NOT NULL DEFAULT 0,
    blob_key     TEXT NOT NULL,
    thumb_key    TEXT,
    created_at   INTEGER NOT NULL
);
CREATE INDEX chat_attachments_message_idx ON chat_attachments (message_id, position);
-- A forwarded file shares its blob with the original: a blob is deleted when no row uses it.
CREATE INDEX chat_attachments_blob_idx ON chat_attachments (blob_key);

CREATE TABLE chat_attachment_views (
    attachment_id BLOB NOT NULL REFERENCES chat_attachments(id) ON DELETE CASCADE,
    user_id       BLOB NOT NULL,
    viewed_at     INTEGER NOT NULL,
    PRIMARY KEY (attachment_id, user_id)
);
