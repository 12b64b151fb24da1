-- The event outbox no longer has a foreign key to the event log.
--
-- Why, measured under pipeline-bench (BENCHMARKS.md, pipeline, issue 4): an outbox row lives
-- ~20 ms (inserted with its event, deleted once published), and its key check ran a look-up of
-- the event just inserted and took a KEY SHARE lock on it — a WAL-logged write to the event's
-- row — twice per message, to guard a cascade that never fires in practice (the log is pruned
-- after days). Nothing depends on it: the relay loads the events its rows name and deletes the
-- rows either way, so a row whose event was pruned is dropped on the relay's next pass.
ALTER TABLE event_outbox DROP CONSTRAINT event_outbox_event_id_fkey;
