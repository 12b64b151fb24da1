//! Ingress integration tests: the real server on port 0, real Redis, real Postgres.

mod broadcasting;
mod email;
mod failed_jobs;
mod helpers;
mod meta;
mod redis_outage;
mod server;
mod subscriptions;
mod waha;
mod widget;
