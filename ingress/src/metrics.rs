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

use std::{
    sync::{PoisonError, RwLock},
    time::Duration,
};

use metrics::{Counter, Histogram};

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
    static HANDLES: Handles<(&str, u16), Counter> = Handles::new();
    HANDLES
        .get(
            |&(r, s)| r == route && s == status,
            || {
                let counter = metrics::counter!(
                    "ingress_requests_total",
                    "route" => route,
                    "status" => status.to_string()
                );
                ((route, status), counter)
            },
        )
        .increment(1);
}

pub fn rejected(reason: &'static str) {
    static HANDLES: Handles<&str, Counter> = Handles::new();
    by_reason(&HANDLES, "ingress_rejected_total", reason).increment(1);
}

pub fn ignored(reason: &'static str) {
    static HANDLES: Handles<&str, Counter> = Handles::new();
    by_reason(&HANDLES, "ingress_ignored_total", reason).increment(1);
}

/// The counter `name{reason}`, from `handles`.
fn by_reason(
    handles: &Handles<&'static str, Counter>,
    name: &'static str,
    reason: &'static str,
) -> Counter {
    handles.get(
        |&r| r == reason,
        || (reason, metrics::counter!(name, "reason" => reason)),
    )
}

pub fn enqueued(queue: &str, kind: &'static str, took: Duration) {
    static HANDLES: Handles<(Box<str>, &str), Counter> = Handles::new();
    HANDLES
        .get(
            |(q, k)| &**q == queue && *k == kind,
            || {
                let counter = metrics::counter!(
                    "ingress_enqueued_total",
                    "queue" => queue.to_owned(),
                    "kind" => kind
                );
                ((queue.into(), kind), counter)
            },
        )
        .increment(1);
    enqueue_seconds(queue).record(took.as_secs_f64());
}

pub fn duplicate(queue: &str, took: Duration) {
    static HANDLES: Handles<Box<str>, Counter> = Handles::new();
    HANDLES
        .get(
            |q| &**q == queue,
            || {
                let counter =
                    metrics::counter!("ingress_duplicates_total", "queue" => queue.to_owned());
                (queue.into(), counter)
            },
        )
        .increment(1);
    enqueue_seconds(queue).record(took.as_secs_f64());
}

fn enqueue_seconds(queue: &str) -> Histogram {
    static HANDLES: Handles<Box<str>, Histogram> = Handles::new();
    HANDLES.get(
        |q| &**q == queue,
        || {
            let histogram =
                metrics::histogram!("ingress_enqueue_seconds", "queue" => queue.to_owned());
            (queue.into(), histogram)
        },
    )
}

/// Metric handles by their label values, each built once. Building a metric's key on every
/// call (owned label strings, a key hashed into the recorder's registry) was ~2 % of ingress's
/// CPU under load, and the label sets are few (routes × statuses, queues × kinds, reasons), so a
/// short list searched in order is enough. Handles built before the recorder is installed would
/// record nowhere for good: `App::build` installs it first.
struct Handles<K, H> {
    known: RwLock<Vec<(K, H)>>,
}

impl<K, H: Clone> Handles<K, H> {
    const fn new() -> Self {
        Self {
            known: RwLock::new(Vec::new()),
        }
    }

    fn get(&self, matches: impl Fn(&K) -> bool, make: impl FnOnce() -> (K, H)) -> H {
        let find = |known: &[(K, H)]| {
            known
                .iter()
                .find(|(k, _)| matches(k))
                .map(|(_, h)| h.clone())
        };
        if let Some(handle) = find(&self.known.read().unwrap_or_else(PoisonError::into_inner)) {
            return handle;
        }
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = find(&known) {
            return handle;
        }
        let (key, handle) = make();
        known.push((key, handle.clone()));
        handle
    }
}
