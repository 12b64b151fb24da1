-- Everything a conversation transaction writes just before its COMMIT, in one call: its events
-- (as `event_log_append_all` does), their outbox rows, and its staged follow-up jobs.
--
-- Why, measured with pg_stat_statements under pipeline-bench (BENCHMARKS.md, pipeline, issue 4):
-- each staged job was a statement and a round trip of its own (`INSERT INTO job_outbox`), each
-- broadcast event an outbox INSERT of its own, and turning an event's channels from jsonb into an
-- array a sub-query per event. Here the channels come as one space-separated text per event
-- (channel names hold no spaces), which PL/pgSQL evaluates without starting an executor; the
-- outbox rows and the jobs are one INSERT each. The events are still inserted one by one, in
-- emit order, numbered by the same rule as before (the unique index stays the authority).
--
-- `event_log_append_all` stays for processes of the previous release during a rolling deploy.
CREATE FUNCTION transaction_effects_append(
    p_tenant_id TEXT, p_version TEXT, p_source TEXT, p_causation_id TEXT,
    p_ids TEXT[], p_types TEXT[], p_aggregate_types TEXT[], p_aggregate_ids TEXT[],
    p_correlation_ids TEXT[], p_data JSONB[], p_channels TEXT[], p_occurred_at TIMESTAMPTZ[],
    p_job_ids TEXT[], p_jobs JSONB[], p_dedup_keys TEXT[],
    OUT appended_seqs BIGINT[], OUT appended_versions INTEGER[], OUT has_subscriptions BOOLEAN
) LANGUAGE plpgsql AS $$
DECLARE
    v_seq BIGINT;
    v_version INTEGER;
    v_broadcast TEXT[] := '{}';
BEGIN
    appended_seqs := '{}';
    appended_versions := '{}';
    FOR i IN 1 .. COALESCE(array_length(p_ids, 1), 0) LOOP
        INSERT INTO event_logs (id, tenant_id, type, version, source, aggregate_type, aggregate_id,
                                aggregate_version, correlation_id, causation_id, data, channels,
                                occurred_at)
        SELECT p_ids[i], p_tenant_id, p_types[i], p_version, p_source, p_aggregate_types[i],
               p_aggregate_ids[i], COALESCE(MAX(l.aggregate_version), 0) + 1,
               p_correlation_ids[i], p_causation_id, p_data[i],
               string_to_array(p_channels[i], ' '), p_occurred_at[i]
          FROM event_logs l
         WHERE l.aggregate_type = p_aggregate_types[i] AND l.aggregate_id = p_aggregate_ids[i]
        RETURNING seq, aggregate_version INTO v_seq, v_version;
        -- Broadcast events wait in the outbox until published.
        IF p_channels[i] <> '' THEN
            v_broadcast := v_broadcast || p_ids[i];
        END IF;
        appended_seqs := appended_seqs || v_seq;
        appended_versions := appended_versions || v_version;
    END LOOP;
    IF cardinality(v_broadcast) > 0 THEN
        INSERT INTO event_outbox (event_id) SELECT unnest(v_broadcast);
    END IF;
    IF cardinality(p_job_ids) > 0 THEN
        INSERT INTO job_outbox (job_id, origin, job, dedup_key)
        SELECT j.id, p_causation_id, j.job, j.dedup_key
          FROM unnest(p_job_ids, p_jobs, p_dedup_keys) AS j(id, job, dedup_key);
    END IF;
    has_subscriptions := cardinality(p_ids) > 0
        AND EXISTS (SELECT 1 FROM event_subscriptions WHERE tenant_id = p_tenant_id);
END;
$$;
