-- Contacts: people an organisation talks to, their channel identities, custom attribute
-- definitions, per-organisation settings and the FTS5 search index.
CREATE TABLE contact_settings (
    org_id          BLOB PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    default_country TEXT NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- `rid` is the stable integer key the FTS5 index rows point at (a rowid alias survives VACUUM).
CREATE TABLE contacts (
    rid         INTEGER PRIMARY KEY,
    id          BLOB NOT NULL,
    org_id      BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    sort_name   TEXT NOT NULL,
    company     TEXT,
    language    TEXT,
    time_zone   TEXT,
    notes       TEXT,
    favorite    INTEGER NOT NULL DEFAULT 0,
    blocked     INTEGER NOT NULL DEFAULT 0,
    attributes  TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT contacts_id_key UNIQUE (id)
);
CREATE INDEX contacts_org_name_idx ON contacts (org_id, sort_name, id);
CREATE INDEX contacts_org_created_idx ON contacts (org_id, created_at, id);
CREATE INDEX contacts_org_updated_idx ON contacts (org_id, updated_at, id);

CREATE TABLE contact_identities (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL,
    contact_id  BLOB NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('phone', 'email', 'whatsapp_phone', 'whatsapp_user', 'telegram')),
    value       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    CONSTRAINT contact_identities_org_kind_value_key UNIQUE (org_id, kind, value)
);
CREATE INDEX contact_identities_contact_idx ON contact_identities (contact_id, created_at);

CREATE TABLE contact_attribute_defs (
    org_id      BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    attr_key    TEXT NOT NULL,
    label       TEXT NOT NULL,
    attr_type   TEXT NOT NULL CHECK (attr_type IN ('text', 'number', 'date', 'boolean', 'single_choice', 'multi_choice')),
    options     TEXT NOT NULL DEFAULT '[]',
    required    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (org_id, attr_key)
);

-- One row per contact (rowid = contacts.rid); `body` is the search text the service builds
-- (lower-cased words of the name, company, identities and text attributes).
CREATE VIRTUAL TABLE contacts_fts USING fts5(body, tokenize = 'unicode61 remove_diacritics 0');
