-- CSV imports: the uploaded file (in the blob store), the column mapping and dedupe rule, live
-- counters and a checkpoint (the byte offset and line of the next record) written in the same
-- transaction as each batch, so a restarted job resumes without creating anything twice.
CREATE TABLE contact_imports (
    id           BLOB PRIMARY KEY,
    org_id       BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    file_name    TEXT NOT NULL,
    blob_key     TEXT NOT NULL,
    options      TEXT NOT NULL,
    total_rows   BIGINT,
    next_byte    BIGINT NOT NULL DEFAULT 0,
    next_line    BIGINT NOT NULL DEFAULT 1,
    rows_done    BIGINT NOT NULL DEFAULT 0,
    created      BIGINT NOT NULL DEFAULT 0,
    updated      BIGINT NOT NULL DEFAULT 0,
    skipped      BIGINT NOT NULL DEFAULT 0,
    failed       BIGINT NOT NULL DEFAULT 0,
    error        TEXT,
    created_by   BLOB,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX contact_imports_org_idx ON contact_imports (org_id, created_at, id);

-- Every rejected row: its line in the file, why, and the raw cells.
CREATE TABLE contact_import_errors (
    import_id  BLOB NOT NULL REFERENCES contact_imports(id) ON DELETE CASCADE,
    line       BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    raw        TEXT NOT NULL,
    PRIMARY KEY (import_id, line)
);

-- The identities the rows accepted so far carry (kind:value → line), to reject a duplicate
-- within the file; dropped when the import finishes.
CREATE TABLE contact_import_keys (
    import_id  BLOB NOT NULL REFERENCES contact_imports(id) ON DELETE CASCADE,
    ikey       TEXT NOT NULL,
    line       BIGINT NOT NULL,
    PRIMARY KEY (import_id, ikey)
);
