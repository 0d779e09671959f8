-- Idempotency-Key records: the key, a fingerprint of the request and the stored response, written
-- in the same transaction as the domain change (see crates/platform/src/idempotency.rs).
CREATE TABLE idempotency_keys (
    org_id      BLOB   NOT NULL,
    scope       TEXT   NOT NULL,
    key         TEXT   NOT NULL,
    fingerprint TEXT   NOT NULL,
    status      INTEGER NOT NULL,
    body        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, scope, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
