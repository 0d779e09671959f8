-- The consent ledger: append-only, one row per opt-in or opt-out of a contact for a channel and
-- purpose. The current state of a (channel, purpose) is its newest row (`seq` orders rows
-- recorded within the same millisecond).
CREATE TABLE contact_consents (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          UUID NOT NULL UNIQUE,
    org_id      UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    contact_id  UUID NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    channel     TEXT NOT NULL CHECK (channel IN ('whatsapp', 'telegram', 'email', 'sms')),
    purpose     TEXT NOT NULL CHECK (purpose IN ('marketing', 'utility')),
    status      TEXT NOT NULL CHECK (status IN ('opted_in', 'opted_out')),
    source      TEXT NOT NULL CHECK (source IN ('form', 'import', 'keyword', 'api', 'agent', 'provider')),
    note        TEXT,
    recorded_by UUID,
    created_at  BIGINT NOT NULL
);
CREATE INDEX contact_consents_contact_idx ON contact_consents (contact_id, channel, purpose, seq);
