//! The `webhook.deliver` handler: one attempt at one event for one subscription.
//!
//! Steps: [`prepare`](Webhooks::prepare) (drop duplicates, hold for inactive subscriptions) →
//! take a fleet-wide per-endpoint slot ([`super::limiter`]) or [`defer`](Webhooks::defer) → sign and send → record (see
//! [`super::record`]). Failures are never slept on and never returned to the queue as errors:
//! the next attempt is scheduled by the record step on the subscription's own schedule, so a
//! failing endpoint costs a worker slot only for the length of one attempt. An error is
//! returned only when the stores are unreachable (the queue then retries the same attempt).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{
    WebhookError, Webhooks,
    client::{Outgoing, Verdict},
    deliveries::{self, DeliveryRow, DeliveryTask, status},
    record::SubscriptionDisabled,
    subscriptions::Subscription,
};
use crate::{db::schema::event_subscriptions as subs, jobs::JobError, queue::Job};

/// What one run of the handler did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Nothing to do: a duplicate job, a deleted subscription, an event already delivered.
    Skipped(&'static str),
    /// The subscription is inactive: the event is kept (`held`) for recovery, not sent.
    Held,
    /// The endpoint already has its share of attempts in flight: put back until `due_ms`.
    Deferred { due_ms: i64 },
    /// 2xx.
    Delivered { attempt: i32, status: u16 },
    /// Failed; the next attempt is scheduled at `due`.
    RetryScheduled {
        attempt: i32,
        next_attempt: i32,
        due: DateTime<Utc>,
    },
    /// Failed, and the schedule is spent: the delivery is `failed` (still recoverable).
    Exhausted { attempt: i32 },
    /// Failed while the subscription was already disabled by another attempt: `held`.
    HeldAfterFailure { attempt: i32 },
    /// This failure (or a 410 Gone) disabled the subscription.
    Disabled(SubscriptionDisabled),
}

impl Outcome {
    /// A short name for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Skipped(_) => "skipped",
            Self::Held | Self::HeldAfterFailure { .. } => "held",
            Self::Deferred { .. } => "deferred",
            Self::Delivered { .. } => "delivered",
            Self::RetryScheduled { .. } => "retry_scheduled",
            Self::Exhausted { .. } => "exhausted",
            Self::Disabled(_) => "disabled",
        }
    }
}

enum Prepared {
    Ready(Box<(Subscription, DeliveryRow)>),
    Done(Outcome),
}

impl Webhooks {
    /// Runs one delivery job. Public so tests and tools can drive a job through the real code.
    pub async fn deliver(&self, job: &Job) -> Result<Outcome, JobError> {
        let task = DeliveryTask::from_job(job).map_err(JobError::Permanent)?;
        let (sub, row) = match self.prepare(&task).await? {
            Prepared::Ready(ready) => *ready,
            Prepared::Done(outcome) => return Ok(outcome),
        };
        let Some(slot) = self
            .limiter
            .try_acquire(&sub.id)
            .await
            .map_err(WebhookError::from)?
        else {
            return Ok(self.defer(job).await?);
        };
        let outgoing = Outgoing {
            url: &sub.url,
            msg_id: &row.event_id,
            body: &row.body,
            secrets: sub.signing_secrets(self.clock.now()),
        };
        let result = self.client.send(&outgoing).await;
        self.limiter.release(slot).await;
        tracing::info!(
            subscription_id = %sub.id,
            event_id = %row.event_id,
            attempt = task.attempt,
            status = ?result.status,
            error = result.error.as_deref().unwrap_or(""),
            ok = result.verdict() == Verdict::Delivered,
            "webhook attempt"
        );
        let outcome = self
            .record(&task, &sub, &row, &result, &job.correlation_id)
            .await?;
        metrics::counter!("switchyard_webhook_attempts_total", "outcome" => outcome.label())
            .increment(1);
        if let (Outcome::Disabled(disabled), Some(hook)) = (&outcome, &self.on_disabled) {
            hook(disabled.clone());
        }
        Ok(outcome)
    }

    async fn prepare(&self, task: &DeliveryTask) -> Result<Prepared, WebhookError> {
        let mut conn = self.db.get().await?;
        let sub = subs::table
            .find(&task.subscription_id)
            .select(Subscription::as_select())
            .first(&mut conn)
            .await
            .optional()?;
        let row = deliveries::load(&mut conn, &task.subscription_id, &task.event_id).await?;
        let (Some(sub), Some(row)) = (sub, row) else {
            return Ok(Prepared::Done(Outcome::Skipped(
                "subscription or delivery deleted",
            )));
        };
        if row.status != status::PENDING || row.attempts >= task.attempt {
            return Ok(Prepared::Done(Outcome::Skipped("attempt already made")));
        }
        if !sub.active {
            deliveries::hold(&mut conn, &sub.id, &row.event_id).await?;
            return Ok(Prepared::Done(Outcome::Held));
        }
        Ok(Prepared::Ready(Box::new((sub, row))))
    }

    /// Puts the job back in the delayed set, unchanged but for a fresh id; no attempt is used.
    async fn defer(&self, job: &Job) -> Result<Outcome, WebhookError> {
        let mut again = Job::new(job.queue.clone(), job.kind.clone(), job.payload.clone())
            .with_correlation_id(job.correlation_id.clone());
        again.tenant_id = job.tenant_id.clone();
        let due =
            self.clock.now() + chrono::Duration::from_std(self.config.defer_by).unwrap_or_default();
        let due_ms = due.timestamp_millis();
        self.queues.enqueue_at(&again, due_ms).await?;
        Ok(Outcome::Deferred { due_ms })
    }
}
