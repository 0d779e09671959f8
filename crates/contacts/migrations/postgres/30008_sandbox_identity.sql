-- The Sandbox channel's simulated customers get their own identity kind.
ALTER TABLE contact_identities DROP CONSTRAINT contact_identities_kind_check;
ALTER TABLE contact_identities ADD CONSTRAINT contact_identities_kind_check
    CHECK (kind IN ('phone', 'email', 'whatsapp_phone', 'whatsapp_user', 'telegram', 'sandbox'));
