-- Segments: saved filters over an organisation's contacts (the filter language is documented in
-- `src/segment.rs`). Names are unique per organisation regardless of case (`name_key`).
CREATE TABLE contact_segments (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    description TEXT,
    filter      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT contact_segments_org_name_key UNIQUE (org_id, name_key)
);
