//! Diesel table definitions, kept in step with `migrations/` by hand (no diesel CLI needed).

diesel::table! {
    failed_jobs (id) {
        id -> Text,
        queue -> Text,
        kind -> Text,
        payload -> Jsonb,
        error -> Text,
        attempts -> Int4,
        correlation_id -> Text,
        tenant_id -> Nullable<Text>,
        failed_at -> Timestamptz,
    }
}

diesel::table! {
    job_receipts (job_id) {
        job_id -> Text,
        queue -> Text,
        attempt -> Int4,
        done_at -> Timestamptz,
    }
}

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    inboxes (id) {
        id -> Text,
        tenant_id -> Text,
        kind -> Text,
        name -> Text,
        page_id -> Nullable<Text>,
        phone_number_id -> Nullable<Text>,
        waha_session -> Nullable<Text>,
        email_provider -> Nullable<Text>,
        waha_hmac_key -> Nullable<Text>,
        widget_token -> Nullable<Text>,
        mailgun_signing_key -> Nullable<Text>,
        postmark_user -> Nullable<Text>,
        postmark_password -> Nullable<Text>,
        disabled_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    inbox_replay_tokens (inbox_id, token) {
        inbox_id -> Text,
        token -> Text,
        used_at -> Timestamptz,
    }
}

// --- The conversation pipeline (migrations/2026-11-23-000003_conversations) ---

diesel::table! {
    api_keys (id) {
        id -> Text,
        tenant_id -> Nullable<Text>,
        scope -> Text,
        name -> Text,
        token_prefix -> Text,
        token_hash -> Text,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    inbox_settings (inbox_id) {
        inbox_id -> Text,
        bot -> Text,
        bot_url -> Nullable<Text>,
        bot_timeout_ms -> Int4,
        handoff_after -> Int4,
        fallback_reply -> Nullable<Text>,
        csat_prompt -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    bot_intents (id) {
        id -> Text,
        inbox_id -> Text,
        name -> Text,
        patterns -> Array<Text>,
        reply -> Nullable<Text>,
        handoff -> Bool,
        priority -> Int4,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    contacts (id) {
        id -> Text,
        tenant_id -> Text,
        inbox_id -> Text,
        external_id -> Text,
        name -> Nullable<Text>,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        tenant_id -> Text,
        inbox_id -> Text,
        contact_id -> Text,
        state -> Text,
        unrecognised_count -> Int4,
        correlation_id -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    agents (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        email -> Nullable<Text>,
        capacity -> Int4,
        load -> Int4,
        available -> Bool,
        last_assigned_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    messages (id) {
        id -> Text,
        tenant_id -> Text,
        inbox_id -> Text,
        session_id -> Text,
        direction -> Text,
        sender_type -> Text,
        agent_id -> Nullable<Text>,
        provider_message_id -> Nullable<Text>,
        kind -> Text,
        body -> Text,
        payload -> Jsonb,
        status -> Text,
        idempotency_key -> Nullable<Text>,
        processed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    cases (id) {
        id -> Text,
        tenant_id -> Text,
        inbox_id -> Text,
        session_id -> Text,
        contact_id -> Text,
        agent_id -> Nullable<Text>,
        state -> Text,
        disposition -> Nullable<Text>,
        sentiment -> Nullable<Text>,
        created_at -> Timestamptz,
        assigned_at -> Nullable<Timestamptz>,
        resolved_at -> Nullable<Timestamptz>,
        closed_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    queue_items (id) {
        id -> Text,
        tenant_id -> Text,
        inbox_id -> Text,
        session_id -> Text,
        case_id -> Text,
        state -> Text,
        agent_id -> Nullable<Text>,
        created_at -> Timestamptz,
        assigned_at -> Nullable<Timestamptz>,
        done_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    csat_surveys (id) {
        id -> Text,
        tenant_id -> Text,
        case_id -> Text,
        session_id -> Text,
        state -> Text,
        score -> Nullable<Int4>,
        comment -> Nullable<Text>,
        created_at -> Timestamptz,
        responded_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    event_logs (id) {
        seq -> Int8,
        id -> Text,
        tenant_id -> Text,
        #[sql_name = "type"]
        event_type -> Text,
        version -> Text,
        source -> Text,
        aggregate_type -> Text,
        aggregate_id -> Text,
        aggregate_version -> Int4,
        correlation_id -> Text,
        causation_id -> Text,
        data -> Jsonb,
        channels -> Array<Text>,
        occurred_at -> Timestamptz,
    }
}

diesel::table! {
    event_outbox (event_id) {
        event_id -> Text,
        created_at -> Timestamptz,
        attempts -> Int4,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    job_outbox (job_id) {
        job_id -> Text,
        origin -> Text,
        job -> Jsonb,
        dedup_key -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(event_outbox -> event_logs (event_id));
diesel::allow_tables_to_appear_in_same_query!(event_outbox, event_logs);
diesel::allow_tables_to_appear_in_same_query!(
    agents,
    queue_items,
    cases,
    sessions,
    contacts,
    messages,
    csat_surveys
);

// --- Outbound webhook subscriptions (migrations/2026-11-23-000004_webhook_subscriptions) ---

diesel::table! {
    event_subscriptions (id) {
        id -> Text,
        tenant_id -> Text,
        url -> Text,
        event_types -> Array<Text>,
        filters -> Jsonb,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamptz>,
        active -> Bool,
        consecutive_failures -> Int4,
        failure_streak_started_at -> Nullable<Timestamptz>,
        disabled_at -> Nullable<Timestamptz>,
        retry_schedule_secs -> Nullable<Array<Int4>>,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (subscription_id, event_id) {
        subscription_id -> Text,
        event_id -> Text,
        tenant_id -> Text,
        event_type -> Text,
        event_at -> Timestamptz,
        body -> Text,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Nullable<Timestamptz>,
        last_attempt_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_logs (id) {
        id -> Text,
        subscription_id -> Text,
        tenant_id -> Text,
        event_id -> Text,
        event_type -> Text,
        attempt -> Int4,
        url -> Text,
        request_headers -> Jsonb,
        status -> Nullable<Int4>,
        response_excerpt -> Nullable<Text>,
        duration_ms -> Int4,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    inbox_sla (inbox_id) {
        inbox_id -> Text,
        warning_secs -> Nullable<Int4>,
        breach_secs -> Nullable<Int4>,
        csat_expiry_secs -> Nullable<Int4>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sla_notices (queue_item_id, level) {
        queue_item_id -> Text,
        level -> Text,
        emitted_at -> Timestamptz,
    }
}

diesel::table! {
    inbox_outbound (inbox_id) {
        inbox_id -> Text,
        api_base_url -> Nullable<Text>,
        api_version -> Nullable<Text>,
        access_token -> Nullable<Text>,
        smtp_host -> Nullable<Text>,
        smtp_port -> Nullable<Int4>,
        smtp_security -> Nullable<Text>,
        smtp_username -> Nullable<Text>,
        smtp_password -> Nullable<Text>,
        smtp_from -> Nullable<Text>,
        paused_at -> Nullable<Timestamptz>,
        paused_reason -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    message_deliveries (message_id) {
        message_id -> Text,
        session_id -> Text,
        attempts -> Int4,
        sent_at -> Nullable<Timestamptz>,
        delivered_at -> Nullable<Timestamptz>,
        read_at -> Nullable<Timestamptz>,
        failed_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(message_deliveries -> messages (message_id));
diesel::allow_tables_to_appear_in_same_query!(message_deliveries, messages);

diesel::table! {
    custom_event_types (tenant_id, name) {
        tenant_id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        schema -> Jsonb,
        archived -> Bool,
        archived_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    custom_event_publications (tenant_id, idempotency_key) {
        tenant_id -> Text,
        idempotency_key -> Text,
        event_id -> Text,
        created_at -> Timestamptz,
    }
}
