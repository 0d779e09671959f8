-- Replies are matched through the channel's recent campaigns and the (campaign, contact) key
-- (`store::mark_replied`). The index by contact cost every send a write into a random place of
-- a million-entry tree, for a lookup made once per customer message.
DROP INDEX campaign_recipients_reply_idx;
