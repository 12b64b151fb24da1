CREATE OR REPLACE FUNCTION outbox_forget_async(p_event_ids TEXT[], p_job_ids TEXT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    DELETE FROM event_outbox WHERE event_id = ANY (p_event_ids);
    DELETE FROM job_outbox WHERE job_id = ANY (p_job_ids);
END;
$$;
