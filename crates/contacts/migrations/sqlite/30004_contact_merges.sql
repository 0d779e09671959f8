-- Every merge of two contacts: which survived, which was merged into it, and the merged contact
-- as it was (identities, tags, groups, attributes) so the merge can be audited.
CREATE TABLE contact_merges (
    id           BLOB PRIMARY KEY,
    org_id       BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    survivor_id  BLOB NOT NULL,
    merged_id    BLOB NOT NULL,
    snapshot     TEXT NOT NULL,
    merged_by    BLOB,
    created_at   INTEGER NOT NULL
);
CREATE INDEX contact_merges_survivor_idx ON contact_merges (org_id, survivor_id, created_at);
