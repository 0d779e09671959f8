-- Message templates: WhatsApp templates (reviewed by Meta; `status` follows its reports) and
-- local text templates for Telegram and the Sandbox. One row per name and language of a
-- channel. `components` and `mapping` are JSON.
CREATE TABLE message_templates (
    id                   BLOB PRIMARY KEY,
    org_id               BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    channel_id           BLOB NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    kind                 TEXT NOT NULL CHECK (kind IN ('whatsapp', 'local')),
    name                 TEXT NOT NULL,
    language             TEXT NOT NULL,
    category             TEXT NOT NULL CHECK (category IN ('MARKETING', 'UTILITY', 'AUTHENTICATION')),
    status               TEXT NOT NULL CHECK (status IN ('draft', 'pending', 'approved', 'rejected', 'paused', 'disabled')),
    rejected_reason      TEXT,
    quality              TEXT,
    provider_template_id TEXT,
    components           TEXT NOT NULL,
    mapping              TEXT NOT NULL DEFAULT '{}',
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    submitted_at         INTEGER,
    synced_at            INTEGER,
    CONSTRAINT message_templates_name_key UNIQUE (channel_id, name, language)
);
CREATE INDEX message_templates_org_idx ON message_templates (org_id, updated_at);
CREATE INDEX message_templates_provider_idx ON message_templates (channel_id, provider_template_id);
