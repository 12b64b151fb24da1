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
