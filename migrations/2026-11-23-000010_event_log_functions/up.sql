-- The two statements every pipeline transaction runs per event, as functions.
--
-- Why: they are CTEs sent through diesel's `sql_query`, which is never a cached prepared
-- statement, so Postgres planned them on every call — measured with pg_stat_statements
-- (track_planning) under pipeline-bench: planning the event append cost more than executing it
-- (0.28 of 0.48 ms per event, three events per conversation). PL/pgSQL caches the plans of the
-- statements inside a function per connection, and calling a function is cheap to plan.

-- Appends one event with the next version of its aggregate (the unique index on
-- (aggregate_type, aggregate_id, aggregate_version) stays the authority against races), and its
-- outbox row when it is to be broadcast.
CREATE FUNCTION event_log_append(
    p_id TEXT, p_tenant_id TEXT, p_type TEXT, p_version TEXT, p_source TEXT,
    p_aggregate_type TEXT, p_aggregate_id TEXT, p_correlation_id TEXT, p_causation_id TEXT,
    p_data JSONB, p_channels TEXT[], p_occurred_at TIMESTAMPTZ, p_broadcast BOOLEAN,
    OUT appended_seq BIGINT, OUT appended_version INTEGER
) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_logs (id, tenant_id, type, version, source, aggregate_type, aggregate_id,
                            aggregate_version, correlation_id, causation_id, data, channels,
                            occurred_at)
    SELECT p_id, p_tenant_id, p_type, p_version, p_source, p_aggregate_type, p_aggregate_id,
           COALESCE(MAX(l.aggregate_version), 0) + 1, p_correlation_id, p_causation_id, p_data,
           p_channels, p_occurred_at
      FROM event_logs l
     WHERE l.aggregate_type = p_aggregate_type AND l.aggregate_id = p_aggregate_id
    RETURNING seq, aggregate_version INTO appended_seq, appended_version;
    IF p_broadcast THEN
        INSERT INTO event_outbox (event_id) VALUES (p_id);
    END IF;
END;
$$;

-- Forgets the outbox rows of what was published and enqueued.
CREATE FUNCTION outbox_forget(p_event_ids TEXT[], p_job_ids TEXT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM event_outbox WHERE event_id = ANY (p_event_ids);
    DELETE FROM job_outbox WHERE job_id = ANY (p_job_ids);
END;
$$;
