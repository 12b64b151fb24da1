DELETE FROM event_outbox o WHERE NOT EXISTS (SELECT 1 FROM event_logs l WHERE l.id = o.event_id);
ALTER TABLE event_outbox ADD CONSTRAINT event_outbox_event_id_fkey
    FOREIGN KEY (event_id) REFERENCES event_logs (id) ON DELETE CASCADE;
