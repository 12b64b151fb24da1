-- The outbox cleanup without waiting for the WAL flush.
--
-- Why: after a pipeline job commits, publishes and enqueues, `Outbox::forget` deletes the outbox
-- rows of what went out, in a transaction of its own. With synchronous_commit on, that was a
-- second WAL flush per job, after the one that matters (the job's effects). Losing this cleanup
-- in a crash only means the relay sends those rows again — the outbox already promises "maybe
-- twice, never zero times" — so it may commit asynchronously.
--
-- Call it only in a transaction that does nothing else (autocommit): the setting is
-- transaction-local and would weaken any other write of that transaction.
CREATE FUNCTION outbox_forget_async(p_event_ids TEXT[], p_job_ids TEXT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    DELETE FROM event_outbox WHERE event_id = ANY (p_event_ids);
    DELETE FROM job_outbox WHERE job_id = ANY (p_job_ids);
END;
$$;
