-- What a job or request caused: the retry of a job that crashed between its COMMIT and its
-- publish looks up its own unsent events by causation id (`Outbox::flush_origin`, run for every
-- redelivered webhook and rerun job). Without an index that look-up read the whole event log —
-- which only grows — through its primary key. Also the on-call's "what did job X do?".
CREATE INDEX event_logs_causation ON event_logs (causation_id);
