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
