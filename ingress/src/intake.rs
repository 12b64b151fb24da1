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

use serde::Serialize;
use serde_json::{Value, value::RawValue};
use shared::{
    inboxes::Inbox,
    queue::{EncodedJob, NewJobParts, QueueName, Queues, enqueue::Enqueued},
};

use crate::{body, errors::IngressError, metrics};

/// One job to store.
#[derive(Debug)]
pub struct Inbound {
    pub queue: QueueName,
    pub kind: &'static str,
    /// Unique per provider event within the queue, e.g. `inb_…:message:<wamid>`.
    pub dedup_key: String,
    pub tenant_id: String,
    pub payload: Payload,
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

/// The payload of every inbound job (see [`crate::jobs`]): the provider's JSON under `raw`, and
/// beside it the facts ingress established.
#[derive(Debug, Serialize)]
pub struct Payload {
    v: u8,
    channel: &'static str,
    inbox_id: String,
    tenant_id: String,
    provider_message_id: Option<String>,
    received_at: String,
    context: Value,
    raw: Raw,
}

/// The provider's JSON for one event, as the job carries it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Raw {
    /// A part of a larger request that a route picked out of the parsed body.
    Value(Value),
    /// The request body itself, byte for byte (already checked to be JSON): nothing to build
    /// or write back out.
    Verbatim(Box<RawValue>),
}

impl From<Value> for Raw {
    fn from(value: Value) -> Self {
        Self::Value(value)
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
        raw: impl Into<Raw>,
        context: Value,
    ) -> Inbound {
        Inbound {
            queue: queue.clone(),
            kind,
            dedup_key: format!("{}:{event_key}", self.inbox.id),
            tenant_id: self.inbox.tenant_id.clone(),
            payload: Payload {
                v: 1,
                channel: self.channel,
                inbox_id: self.inbox.id.clone(),
                tenant_id: self.inbox.tenant_id.clone(),
                provider_message_id: provider_message_id.map(str::to_owned),
                received_at: self.received_at.to_owned(),
                context,
                raw: raw.into(),
            },
        }
    }
}

/// How many jobs were stored, recognised as duplicates, or not taken: the body of a webhook's
/// 200, `{"accepted": …, "duplicates": …, "ignored": …}`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub accepted: usize,
    pub duplicates: usize,
    pub ignored: usize,
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
    // Every job is encoded (and checked) before any is stored: bad input enqueues nothing.
    let mut encoded = Vec::with_capacity(intake.jobs.len());
    for inbound in &intake.jobs {
        let parts = NewJobParts {
            tenant_id: Some(&inbound.tenant_id),
            correlation_id: Some(correlation_id),
            dedup_key: Some(&inbound.dedup_key),
        };
        // Unreachable in practice: the payload is strings, parsed JSON and checked raw JSON.
        let job = EncodedJob::new(&inbound.queue, inbound.kind, &inbound.payload, parts)
            .map_err(|e| IngressError::invalid("body", format!("cannot be stored: {e}")))?;
        if body::has_nul_character(job.json().as_bytes()) {
            return Err(IngressError::invalid("body", body::NUL_REFUSED));
        }
        encoded.push(job);
    }
    for (inbound, job) in intake.jobs.into_iter().zip(encoded) {
        let queue = inbound.queue;
        let started = Instant::now();
        match queues
            .enqueue_encoded_unless_duplicate(job, &inbound.dedup_key, window)
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
