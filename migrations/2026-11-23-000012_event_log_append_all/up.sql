-- Appends all the events of one transaction in one call, just before its COMMIT, and says
-- whether the tenant has webhook subscriptions, active or not (inactive ones record their events
-- as held): whether `Tx::commit` must stage a fan-out job.
--
-- Why: one `event_log_append` call per event meant a round trip, a statement to parse and plan
-- and a function call per event (three for a new conversation's first message), and the
-- subscription check a fourth round trip; measured with pg_stat_statements under
-- pipeline-bench (BENCHMARKS.md, pipeline, issue 4). Each event is still its own INSERT, in the
-- order the transaction emitted them, numbered by the same rule as `event_log_append` (the next
-- version of its aggregate; the unique index stays the authority against races).
CREATE FUNCTION event_log_append_all(
    p_tenant_id TEXT, p_version TEXT, p_source TEXT, p_causation_id TEXT,
    p_ids TEXT[], p_types TEXT[], p_aggregate_types TEXT[], p_aggregate_ids TEXT[],
    p_correlation_ids TEXT[], p_data JSONB[], p_channels JSONB[], p_occurred_at TIMESTAMPTZ[],
    OUT appended_seqs BIGINT[], OUT appended_versions INTEGER[], OUT has_subscriptions BOOLEAN
) LANGUAGE plpgsql AS $$
DECLARE
    v_seq BIGINT;
    v_version INTEGER;
    v_channels TEXT[];
BEGIN
    appended_seqs := '{}';
    appended_versions := '{}';
    FOR i IN 1 .. COALESCE(array_length(p_ids, 1), 0) LOOP
        v_channels := ARRAY(SELECT jsonb_array_elements_text(p_channels[i]));
        INSERT INTO event_logs (id, tenant_id, type, version, source, aggregate_type, aggregate_id,
                                aggregate_version, correlation_id, causation_id, data, channels,
                                occurred_at)
        SELECT p_ids[i], p_tenant_id, p_types[i], p_version, p_source, p_aggregate_types[i],
               p_aggregate_ids[i], COALESCE(MAX(l.aggregate_version), 0) + 1,
               p_correlation_ids[i], p_causation_id, p_data[i], v_channels, p_occurred_at[i]
          FROM event_logs l
         WHERE l.aggregate_type = p_aggregate_types[i] AND l.aggregate_id = p_aggregate_ids[i]
        RETURNING seq, aggregate_version INTO v_seq, v_version;
        -- Broadcast events wait in the outbox until published.
        IF cardinality(v_channels) > 0 THEN
            INSERT INTO event_outbox (event_id) VALUES (p_ids[i]);
        END IF;
        appended_seqs := appended_seqs || v_seq;
        appended_versions := appended_versions || v_version;
    END LOOP;
    has_subscriptions := EXISTS (SELECT 1 FROM event_subscriptions WHERE tenant_id = p_tenant_id);
END;
$$;
