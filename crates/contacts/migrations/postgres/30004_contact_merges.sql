-- Every merge of two contacts: which survived, which was merged into it, and the merged contact
-- as it was (identities, tags, groups, attributes) so the merge can be audited.
CREATE TABLE contact_merges (
    id           UUID PRIMARY KEY,
    org_id       UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    survivor_id  UUID NOT NULL,
    merged_id    UUID NOT NULL,
    snapshot     JSONB NOT NULL,
    merged_by    UUID,
    created_at   BIGINT NOT NULL
);
CREATE INDEX contact_merges_survivor_idx ON contact_merges (org_id, survivor_id, created_at);
