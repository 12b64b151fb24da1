-- `transaction_effects_append` for a transaction that carries several jobs' steps (group commit,
-- worker/src/handlers/batch.rs): each event names its own causation id, each staged job its own
-- origin, so one call before the COMMIT writes every step's effects. One call instead of one
-- per step: under pgbench, the store statements of four messages in one transaction cost
-- Postgres 0.82–0.95 ms of CPU per message with an append per message, 0.66–0.79 with one
-- (BENCHMARKS.md, "Group commit").
--
-- Otherwise as 000016's function, which stays for processes of the previous release.
CREATE FUNCTION transaction_effects_append_steps(
    p_tenant_id TEXT, p_version TEXT, p_source TEXT, p_causation_ids TEXT[],
    p_ids TEXT[], p_types TEXT[], p_aggregate_types TEXT[], p_aggregate_ids TEXT[],
    p_correlation_ids TEXT[], p_data JSONB[], p_channels TEXT[], p_occurred_at TIMESTAMPTZ[],
    p_job_ids TEXT[], p_jobs JSONB[], p_dedup_keys TEXT[], p_job_origins TEXT[],
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
               p_correlation_ids[i], p_causation_ids[i], p_data[i],
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
        SELECT j.id, j.origin, j.job, j.dedup_key
          FROM unnest(p_job_ids, p_job_origins, p_jobs, p_dedup_keys) AS j(id, origin, job, dedup_key);
    END IF;
    has_subscriptions := cardinality(p_ids) > 0
        AND EXISTS (SELECT 1 FROM event_subscriptions WHERE tenant_id = p_tenant_id);
END;
$$;
