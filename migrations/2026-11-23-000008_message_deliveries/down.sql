DROP TABLE message_deliveries;
UPDATE messages SET status = 'delivered' WHERE status = 'sent';
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('new', 'stored', 'delivered', 'read', 'failed'));
