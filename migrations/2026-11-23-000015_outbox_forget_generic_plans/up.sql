-- The outbox cleanup with generic plans for its two deletes.
--
-- Why: `event_id = ANY (p_event_ids)` costs less as a custom plan (the planner sees how many ids
-- there are) than as a generic one (it guesses), so Postgres re-planned both deletes on every
-- call — pg_stat_statements under pipeline-bench counted as many plans as calls, ~90 µs of
-- planning per cleanup, more than the deletes themselves. The generic plan is the same primary
-- key probe. Set for this function's own transaction only (it runs alone, in autocommit), so no
-- other statement of the pooled connection is affected.
CREATE OR REPLACE FUNCTION outbox_forget_async(p_event_ids TEXT[], p_job_ids TEXT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
    DELETE FROM event_outbox WHERE event_id = ANY (p_event_ids);
    DELETE FROM job_outbox WHERE job_id = ANY (p_job_ids);
END;
$$;
