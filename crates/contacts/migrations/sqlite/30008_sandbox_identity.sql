-- The Sandbox channel's simulated customers get their own identity kind. SQLite cannot alter a
-- CHECK constraint: the table is rebuilt with the same rows, keys and indexes.
CREATE TABLE contact_identities_new (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL,
    contact_id  BLOB NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('phone', 'email', 'whatsapp_phone', 'whatsapp_user', 'telegram', 'sandbox')),
    value       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    CONSTRAINT contact_identities_org_kind_value_key UNIQUE (org_id, kind, value)
);
INSERT INTO contact_identities_new (id, org_id, contact_id, kind, value, created_at)
    SELECT id, org_id, contact_id, kind, value, created_at FROM contact_identities;
DROP TABLE contact_identities;
ALTER TABLE contact_identities_new RENAME TO contact_identities;
CREATE INDEX contact_identities_contact_idx ON contact_identities (contact_id, created_at);
