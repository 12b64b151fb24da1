//! Ingress integration tests: the real server on port 0, real Redis, real Postgres.

mod broadcasting;
mod email;
mod event_types;
mod failed_jobs;
mod helpers;
mod meta;
mod postgres_outage;
mod redis_outage;
mod server;
mod subscriptions;
mod waha;
mod webhook_recovery;
mod webhook_worker;
mod widget;

// The Standard Webhooks subscriber and independent verifier of shared's webhook tests.
#[allow(dead_code)]
#[path = "../../../shared/tests/webhooks/subscriber.rs"]
mod subscriber;
#[allow(dead_code)]
#[path = "../../../shared/tests/webhooks/verifier.rs"]
mod verifier;
