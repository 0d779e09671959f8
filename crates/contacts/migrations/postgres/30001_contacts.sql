-- Contacts: people an organisation talks to, their channel identities, custom attribute
-- definitions, per-organisation settings; full-text search through a tsvector column.
CREATE TABLE contact_settings (
    org_id          UUID PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    default_country TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE contacts (
    id          UUID PRIMARY KEY,
    org_id      UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    sort_name   TEXT NOT NULL,
    company     TEXT,
    language    TEXT,
    time_zone   TEXT,
    notes       TEXT,
    favorite    BOOLEAN NOT NULL DEFAULT FALSE,
    blocked     BOOLEAN NOT NULL DEFAULT FALSE,
    attributes  JSONB NOT NULL DEFAULT '{}',
    -- Exact lexemes the service builds (array_to_tsvector), queried with prefix `:*` terms.
    search      TSVECTOR NOT NULL DEFAULT ''::tsvector,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX contacts_org_name_idx ON contacts (org_id, sort_name, id);
CREATE INDEX contacts_org_created_idx ON contacts (org_id, created_at, id);
CREATE INDEX contacts_org_updated_idx ON contacts (org_id, updated_at, id);
CREATE INDEX contacts_search_idx ON contacts USING GIN (search);

CREATE TABLE contact_identities (
    id          UUID PRIMARY KEY,
    org_id      UUID NOT NULL,
    contact_id  UUID NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('phone', 'email', 'whatsapp_phone', 'whatsapp_user', 'telegram')),
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT contact_identities_org_kind_value_key UNIQUE (org_id, kind, value)
);
CREATE INDEX contact_identities_contact_idx ON contact_identities (contact_id, created_at);

CREATE TABLE contact_attribute_defs (
    org_id      UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    attr_key    TEXT NOT NULL,
    label       TEXT NOT NULL,
    attr_type   TEXT NOT NULL CHECK (attr_type IN ('text', 'number', 'date', 'boolean', 'single_choice', 'multi_choice')),
    options     JSONB NOT NULL DEFAULT '[]',
    required    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, attr_key)
);
