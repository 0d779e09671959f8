-- Dispatchers lease ranges of recipients instead of marking each one `sending`. That claim
-- was a second write of every recipient (its state changed: a new row version and an entry in
-- every index) before the write of its outcome. Now a dispatcher takes the next `batch`
-- recipients in `seq` order, from `campaigns.next_seq` to the last of them, and holds them with
-- one row here; the range's pending recipients are sent, their outcomes written once, and the
-- lease row deleted in the same write. A lease that runs out (its worker stopped) turns the
-- range's still-pending recipients `unconfirmed`, as a row lease did. Once every recipient has
-- been in a range, those still pending (sent back by a pause, the pace or the grace period)
-- are claimed row by row as before, never one inside a live lease.
CREATE TABLE campaign_leases (
    campaign_id UUID NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, first_seq)
);
-- The first `seq` not leased yet.
ALTER TABLE campaigns ADD COLUMN next_seq BIGINT NOT NULL DEFAULT 1;
