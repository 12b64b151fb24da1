//! The last step of every webhook: turn what a route accepted into jobs and store them, one job
//! per inbound message or status update, each unless it is a duplicate.
//!
//! A route first builds its whole [`Intake`] (parsing and validating everything), so bad input
//! never enqueues part of a request. Jobs are then stored one by one with the queue's atomic
//! enqueue-unless-duplicate (SET NX + XADD in one script), in the order the provider sent them.
//! Every job has a dedup key scoped by inbox, so if Redis fails half-way through a batch the 503
//! makes the provider redeliver the whole request and the jobs already stored are recognised as
//! duplicates: nothing is lost and nothing is enqueued twice (DESIGN.md §3, invariants 1 and 5).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::{
    inboxes::Inbox,
    queue::{Job, QueueName, Queues, enqueue::Enqueued},
};

use crate::{errors::IngressError, metrics};

/// One job to store.
#[derive(Debug)]
pub struct Inbound {
    pub queue: QueueName,
    pub kind: &'static str,
    /// Unique per provider event within the queue, e.g. `inb_…:message:<wamid>`.
    pub dedup_key: String,
    pub tenant_id: String,
    pub payload: Value,
}

/// What one request yields: jobs to store, and updates acknowledged without a job.
#[derive(Debug, Default)]
pub struct Intake {
    pub jobs: Vec<Inbound>,
    pub ignored: Vec<&'static str>,
}

impl Intake {
    pub fn ignore(&mut self, reason: &'static str) {
        self.ignored.push(reason);
    }
}

/// The facts every job payload carries besides the provider's own JSON.
pub struct Routing<'a> {
    pub inbox: &'a Inbox,
    pub channel: &'static str,
    pub received_at: &'a str,
}

impl Routing<'_> {
    /// The job for one provider event: `raw` is the provider's JSON for it, verbatim.
    pub fn job(
        &self,
        kind: &'static str,
        queue: &QueueName,
        event_key: &str,
        provider_message_id: Option<&str>,
        raw: Value,
        context: Value,
    ) -> Inbound {
        Inbound {
            queue: queue.clone(),
            kind,
            dedup_key: format!("{}:{event_key}", self.inbox.id),
            tenant_id: self.inbox.tenant_id.clone(),
            payload: json!({
                "v": 1,
                "channel": self.channel,
                "inbox_id": self.inbox.id,
                "tenant_id": self.inbox.tenant_id,
                "provider_message_id": provider_message_id,
                "received_at": self.received_at,
                "context": context,
                "raw": raw,
            }),
        }
    }
}

/// How many jobs were stored, recognised as duplicates, or not taken.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: usize,
    pub duplicates: usize,
    pub ignored: usize,
}

impl Outcome {
    pub fn body(&self) -> Value {
        json!({ "accepted": self.accepted, "duplicates": self.duplicates, "ignored": self.ignored })
    }
}

/// Stores every job of `intake`; returns only after Redis answered for each.
pub async fn store(
    queues: &Queues,
    window: Duration,
    correlation_id: &str,
    intake: Intake,
) -> Result<Outcome, IngressError> {
    let mut outcome = Outcome {
        ignored: intake.ignored.len(),
        ..Outcome::default()
    };
    intake
        .ignored
        .iter()
        .for_each(|reason| metrics::ignored(reason));
    for inbound in intake.jobs {
        let queue = inbound.queue.clone();
        let job = Job::new(inbound.queue, inbound.kind, inbound.payload)
            .with_tenant(inbound.tenant_id)
            .with_correlation_id(correlation_id);
        let started = Instant::now();
        match queues
            .enqueue_unless_duplicate(&job, &inbound.dedup_key, window)
            .await
        {
            Ok(Enqueued::New { .. }) => {
                metrics::enqueued(queue.as_str(), inbound.kind, started.elapsed());
                outcome.accepted += 1;
            }
            Ok(Enqueued::Duplicate { holder }) => {
                metrics::duplicate(queue.as_str(), started.elapsed());
                tracing::debug!(queue = %queue, holder, "duplicate delivery acknowledged");
                outcome.duplicates += 1;
            }
            Err(error) => {
                tracing::warn!(error = %error, queue = %queue, stored = outcome.accepted, "redis unavailable");
                return Err(IngressError::Unavailable { store: "redis" });
            }
        }
    }
    Ok(outcome)
}
