-- Tags (labels with a colour) and groups (static lists) of contacts, with their memberships.
-- Names are unique per organisation regardless of case (`name_key` is the lower-cased name).
CREATE TABLE contact_tags (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    color       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT contact_tags_org_name_key UNIQUE (org_id, name_key)
);

CREATE TABLE contact_tag_links (
    org_id      BLOB NOT NULL,
    contact_id  BLOB NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    tag_id      BLOB NOT NULL REFERENCES contact_tags(id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, tag_id)
);
CREATE INDEX contact_tag_links_tag_idx ON contact_tag_links (tag_id, contact_id);

CREATE TABLE contact_groups (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    description TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT contact_groups_org_name_key UNIQUE (org_id, name_key)
);

CREATE TABLE contact_group_members (
    org_id      BLOB NOT NULL,
    contact_id  BLOB NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    group_id    BLOB NOT NULL REFERENCES contact_groups(id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, group_id)
);
CREATE INDEX contact_group_members_group_idx ON contact_group_members (group_id, contact_id);
