-- Segments: saved filters over an organisation's contacts (the filter language is documented in
-- `src/segment.rs`). Names are unique per organisation regardless of case (`name_key`).
CREATE TABLE contact_segments (
    id          UUID PRIMARY KEY,
    org_id      UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    description TEXT,
    filter      JSONB NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT contact_segments_org_name_key UNIQUE (org_id, name_key)
);
