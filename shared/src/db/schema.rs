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
