//! The metrics ingress records, named in one place so dashboards and alerts have one reference.
//!
//! - `ingress_requests_total{route, status}`: every answered request, by route template.
//! - `ingress_rejected_total{reason}`: refused requests (4xx/5xx), by [`IngressError::reason`].
//! - `ingress_ignored_total{reason}`: validly signed updates we answer 200 but do not enqueue
//!   (echoes, unknown page or phone number, unhandled events), by reason.
//! - `ingress_enqueued_total{queue, kind}` and `ingress_duplicates_total{queue}`.
//! - `ingress_enqueue_seconds{queue}`: histogram of the Redis round trip that stores one job.
//!
//! [`IngressError::reason`]: crate::errors::IngressError::reason

use std::time::Duration;

pub fn describe() {
    metrics::describe_counter!(
        "ingress_requests_total",
        "requests answered, by route and status"
    );
    metrics::describe_counter!("ingress_rejected_total", "requests refused, by reason");
    metrics::describe_counter!(
        "ingress_ignored_total",
        "signed updates acknowledged but not enqueued, by reason"
    );
    metrics::describe_counter!("ingress_enqueued_total", "jobs enqueued, by queue and kind");
    metrics::describe_counter!(
        "ingress_duplicates_total",
        "redeliveries acknowledged without a new job"
    );
    metrics::describe_histogram!(
        "ingress_enqueue_seconds",
        metrics::Unit::Seconds,
        "time to store one job in Redis"
    );
}

pub fn request(route: &'static str, status: u16) {
    metrics::counter!("ingress_requests_total", "route" => route, "status" => status.to_string())
        .increment(1);
}

pub fn rejected(reason: &'static str) {
    metrics::counter!("ingress_rejected_total", "reason" => reason).increment(1);
}

pub fn ignored(reason: &'static str) {
    metrics::counter!("ingress_ignored_total", "reason" => reason).increment(1);
}

pub fn enqueued(queue: &str, kind: &'static str, took: Duration) {
    metrics::counter!("ingress_enqueued_total", "queue" => queue.to_owned(), "kind" => kind)
        .increment(1);
    metrics::histogram!("ingress_enqueue_seconds", "queue" => queue.to_owned())
        .record(took.as_secs_f64());
}

pub fn duplicate(queue: &str, took: Duration) {
    metrics::counter!("ingress_duplicates_total", "queue" => queue.to_owned()).increment(1);
    metrics::histogram!("ingress_enqueue_seconds", "queue" => queue.to_owned())
        .record(took.as_secs_f64());
}
