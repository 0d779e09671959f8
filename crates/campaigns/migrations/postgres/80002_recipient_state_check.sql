-- A recipient's campaign was checked by a foreign key: PostgreSQL runs that check as a trigger
-- per row, a quarter of the cost of writing a million-recipient snapshot. Recipients are only
-- written by their campaign's snapshot and are deleted with it (`store::delete`), so the key
-- goes. (SQLite checks its keys cheaply and keeps it; it rebuilds the table in this version to
-- make its state check cheap.)
ALTER TABLE campaign_recipients DROP CONSTRAINT campaign_recipients_campaign_id_fkey;
