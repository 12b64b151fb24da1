//! The `delivery.send` job handler: one outbound message through its inbox's channel, with the
//! verdict turned into what the message, the inbox and the queue do next.
//!
//! The handler owns the sending side (settings → sender → [`Delivery::attempt`] → verdict) and
//! the Redis pause flag of broken inboxes. What is stored in Postgres, and which events are
//! emitted, belongs to the conversation pipeline: it is reached through [`DeliveryStore`], which
//! the pipeline implements on its `messages` and `inboxes` tables. Outbound credentials come
//! through [`SettingsSource`] (in production shared::channels::settings, on `inbox_outbound`).
//!
//! Before every send the handler asks the source for the inbox's [`InboxState`]: a revision of
//! its settings (the row's `updated_at`; a cached sender is rebuilt when it moved) and the
//! durable pause record (which restores the Redis flag if Redis lost it).

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use serde_json::Value;

use super::{
    ChannelSender, ChannelSettings, Delivery, EmailThread, OutboundMessage, keys,
    status::DeliveryStatus,
    throttle::BucketConfig,
    verdict::{SendError, job_error},
};
use crate::{
    inboxes::InboxKind,
    jobs::{JobError, JobHandler},
    queue::{Job, Queues},
};

/// How often a held delivery looks again whether its inbox was resumed.
pub const PAUSED_RECHECK: Duration = Duration::from_secs(60);

/// The job kind this handler runs (the pipeline's `conversation::delivery::DELIVERY_SEND`).
pub const DELIVERY_SEND: &str = "delivery.send";

/// A `delivery.send` payload (version 1), as the pipeline stages it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryTask {
    pub message_id: String,
    pub tenant_id: String,
    pub inbox_id: String,
    pub session_id: String,
    pub channel: InboxKind,
    pub recipient: String,
    pub text: String,
    pub messenger_tag: Option<String>,
    pub email: Option<EmailThread>,
}

impl DeliveryTask {
    /// Parses a payload; a malformed one is permanent (no retry can fix it).
    pub fn from_payload(payload: &Value) -> Result<Self, JobError> {
        let text = |key: &str| -> Result<String, JobError> {
            payload
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| JobError::permanent(format!("delivery payload lacks {key:?}")))
        };
        let channel = text("channel")?.parse().map_err(JobError::Permanent)?;
        Ok(Self {
            message_id: text("message_id")?,
            tenant_id: text("tenant_id")?,
            inbox_id: text("inbox_id")?,
            session_id: text("session_id").unwrap_or_default(),
            channel,
            recipient: text("recipient")?,
            text: text("text")?,
            messenger_tag: text("messenger_tag").ok(),
            email: payload.get("email").and_then(email_thread),
        })
    }

    pub fn outbound(&self) -> OutboundMessage {
        OutboundMessage {
            message_id: self.message_id.clone(),
            recipient: self.recipient.clone(),
            text: self.text.clone(),
            messenger_tag: self.messenger_tag.clone(),
            email: self.email.clone(),
        }
    }
}

fn email_thread(value: &Value) -> Option<EmailThread> {
    let object = value.as_object()?;
    let text = |k: &str| object.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(EmailThread {
        subject: text("subject").unwrap_or_default(),
        in_reply_to: text("in_reply_to"),
        references: object
            .get("references")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// What the handler needs from the database; the pipeline implements it. Every method must be
/// idempotent (a job runs at least once) and commit before returning.
pub trait DeliveryStore: Send + Sync + 'static {
    /// The message's status now; `None` when it no longer exists.
    fn status<'a>(
        &'a self,
        task: &'a DeliveryTask,
    ) -> BoxFuture<'a, Result<Option<DeliveryStatus>, JobError>>;
    /// The provider accepted it: store its id, move it on, emit `message.delivered`.
    fn sent<'a>(
        &'a self,
        task: &'a DeliveryTask,
        provider_message_id: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>>;
    /// An attempt was refused (whatever follows: retry, failure, pause): count it and keep the
    /// provider's error. Recording nothing is allowed (the default).
    fn attempt_refused<'a>(
        &'a self,
        _task: &'a DeliveryTask,
        _error: &'a SendError,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async { Ok(()) })
    }
    /// It will never be sent: mark it failed, emit `message.delivery_failed` with the reason.
    fn failed<'a>(
        &'a self,
        task: &'a DeliveryTask,
        error: &'a SendError,
    ) -> BoxFuture<'a, Result<(), JobError>>;
    /// The inbox cannot send: record the pause (`delivery_paused_at`), emit
    /// `inbox.delivery_paused`.
    fn inbox_broken<'a>(
        &'a self,
        task: &'a DeliveryTask,
        error: &'a SendError,
    ) -> BoxFuture<'a, Result<(), JobError>>;
}

/// Where an inbox's outbound settings (base URLs, tokens, SMTP account) come from.
pub trait SettingsSource: Send + Sync + 'static {
    fn settings<'a>(
        &'a self,
        inbox_id: &'a str,
        kind: InboxKind,
    ) -> BoxFuture<'a, Result<Option<ChannelSettings>, JobError>>;

    /// Checked before every send. The default (settings that never change, no durable pause)
    /// suits fixed settings.
    fn state<'a>(&'a self, _inbox_id: &'a str) -> BoxFuture<'a, Result<InboxState, JobError>> {
        Box::pin(async { Ok(InboxState::default()) })
    }
}

/// What the settings source knows of an inbox right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InboxState {
    /// Changes whenever the settings change; a sender built under another revision is rebuilt.
    pub revision: Option<i64>,
    /// The durable pause record's reason, when the inbox is paused.
    pub paused: Option<String>,
}

/// Fixed settings per inbox id: configuration from the environment, or tests.
impl SettingsSource for HashMap<String, ChannelSettings> {
    fn settings<'a>(
        &'a self,
        inbox_id: &'a str,
        _kind: InboxKind,
    ) -> BoxFuture<'a, Result<Option<ChannelSettings>, JobError>> {
        Box::pin(async move { Ok(self.get(inbox_id).cloned()) })
    }
}

/// Runs `delivery.send` jobs. Cheap to share; senders are built once per inbox and settings
/// revision, and kept.
///
/// Why the revision (the row's `updated_at`) rather than a TTL or a Redis epoch: the handler
/// reads Postgres for every job anyway (the message's status), so one more primary-key read is
/// cheap, and it is exact — the first send after a settings change commits uses the new token in
/// every worker process, whoever changed the row (API, CLI, SQL), with no window to wait out and
/// no second record in Redis that a direct SQL edit would miss.
pub struct DeliveryHandler {
    redis: Queues,
    delivery: Delivery,
    store: Arc<dyn DeliveryStore>,
    settings: Arc<dyn SettingsSource>,
    senders: std::sync::Mutex<HashMap<String, CachedSender>>,
}

/// A sender and the settings revision it was built from.
#[derive(Clone)]
struct CachedSender {
    revision: Option<i64>,
    sender: Arc<dyn ChannelSender>,
}

impl DeliveryHandler {
    pub fn new(
        redis: Queues,
        store: Arc<dyn DeliveryStore>,
        settings: Arc<dyn SettingsSource>,
    ) -> Arc<Self> {
        Arc::new(Self {
            delivery: Delivery::new(redis.clone()),
            redis,
            store,
            settings,
            senders: std::sync::Mutex::default(),
        })
    }

    /// The handler to register for [`DELIVERY_SEND`] in the worker's `JobRegistry`.
    pub fn job_handler(self: &Arc<Self>) -> impl JobHandler {
        let this = self.clone();
        move |job: Job| {
            let this = this.clone();
            async move { this.run(&job).await }
        }
    }

    /// One attempt at the job's message.
    pub async fn run(&self, job: &Job) -> Result<(), JobError> {
        let task = DeliveryTask::from_payload(&job.payload)?;
        match self.store.status(&task).await? {
            None => return Ok(()),
            Some(status) if finished(status) => return Ok(()),
            Some(_) => {}
        }
        if let Some(reason) = self.paused(&task.inbox_id).await? {
            return self.park(job, &task, &format!("is paused: {reason}")).await;
        }
        let state = self.settings.state(&task.inbox_id).await?;
        if let Some(reason) = state.paused {
            // The durable record outlived the Redis flag (Redis restarted or was flushed):
            // restore the fast path and hold the job.
            self.pause(&task.inbox_id, &reason).await?;
            return self.park(job, &task, &format!("is paused: {reason}")).await;
        }
        let Some(sender) = self.sender(&task, state.revision).await? else {
            // Not configured yet: hold the job without burning an attempt; saving the inbox's
            // outbound settings (PUT /api/inboxes/{id}/outbound) releases it at once.
            return self.park(job, &task, "has no outbound settings").await;
        };
        let bucket = BucketConfig::from_env(task.channel);
        let outcome = self
            .delivery
            .attempt(&task.inbox_id, sender.as_ref(), &bucket, &task.outbound())
            .await;
        match outcome {
            Ok(sent) => self.store.sent(&task, &sent.provider_message_id).await,
            Err(verdict) => self.refused(job, &task, verdict).await,
        }
    }

    /// Records what a refusal means for the message and the inbox; returns the queue's error.
    async fn refused(
        &self,
        job: &Job,
        task: &DeliveryTask,
        verdict: SendError,
    ) -> Result<(), JobError> {
        let last_attempt = job.attempt >= job.max_attempts;
        self.store.attempt_refused(task, &verdict).await?;
        match &verdict {
            SendError::ChannelBroken { .. } => {
                if self.pause(&task.inbox_id, &verdict.to_string()).await? {
                    if let Err(e) = self.store.inbox_broken(task, &verdict).await {
                        // Unflag so the retry records the pause (and alerts) instead of
                        // finding the flag set and skipping both.
                        self.unflag(&task.inbox_id).await?;
                        return Err(e);
                    }
                    alert(task, &verdict);
                }
                return self.park(job, task, &format!("is paused: {verdict}")).await;
            }
            SendError::Permanent { .. } => self.store.failed(task, &verdict).await?,
            _ if last_attempt => self.store.failed(task, &verdict).await?,
            _ => {}
        }
        tracing::warn!(message_id = %task.message_id, inbox_id = %task.inbox_id, verdict = %verdict, "delivery refused");
        Err(job_error(&verdict))
    }

    async fn sender(
        &self,
        task: &DeliveryTask,
        revision: Option<i64>,
    ) -> Result<Option<Arc<dyn ChannelSender>>, JobError> {
        if let Some(cached) = self.cached(&task.inbox_id)
            && cached.revision == revision
        {
            return Ok(Some(cached.sender));
        }
        let Some(settings) = self.settings.settings(&task.inbox_id, task.channel).await? else {
            return Ok(None);
        };
        let sender = super::sender(&settings, &self.redis).map_err(|e| job_error(&e))?;
        // Settings read after `revision`: if they changed in between, the next job sees a newer
        // revision and rebuilds again, so a sender is never stale for more than one send.
        let cached = CachedSender {
            revision,
            sender: sender.clone(),
        };
        self.senders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(task.inbox_id.clone(), cached);
        Ok(Some(sender))
    }

    fn cached(&self, inbox_id: &str) -> Option<CachedSender> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        let senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        senders.get(inbox_id).cloned()
    }

    /// Stops an inbox's deliveries until [`Self::resume`]; `reason` is kept for the on-call.
    /// Returns whether it was running until now (so the alert goes out once per pause).
    pub async fn pause(&self, inbox_id: &str, reason: &str) -> Result<bool, JobError> {
        let mut conn = self.conn().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(keys::paused(self.redis.prefix(), inbox_id))
            .arg(reason)
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(JobError::transient)?;
        Ok(set.is_some())
    }

    /// Holds the job while its inbox is paused: the same job, same attempt, goes back to the
    /// delayed set for [`PAUSED_RECHECK`] and this run succeeds. A paused inbox so keeps its
    /// queue without burning attempts, and sends within a recheck of being resumed. A crash
    /// between the two steps leaves two copies; the send record and the message status make the
    /// second a no-op.
    async fn park(&self, job: &Job, task: &DeliveryTask, reason: &str) -> Result<(), JobError> {
        let due = chrono::Utc::now().timestamp_millis() + PAUSED_RECHECK.as_millis() as i64;
        let mut held = job.clone();
        held.last_error = Some(format!("held: inbox {} {reason}", task.inbox_id));
        self.redis
            .enqueue_at(&held, due)
            .await
            .map_err(JobError::transient)?;
        metrics::counter!("switchyard_deliveries_held_total", "channel" => task.channel.as_str())
            .increment(1);
        tracing::info!(message_id = %task.message_id, inbox_id = %task.inbox_id, reason, "delivery held");
        Ok(())
    }

    async fn unflag(&self, inbox_id: &str) -> Result<(), JobError> {
        let mut conn = self.conn().await?;
        redis::cmd("DEL")
            .arg(keys::paused(self.redis.prefix(), inbox_id))
            .query_async::<()>(&mut conn)
            .await
            .map_err(JobError::transient)
    }

    /// Lets an inbox send again from this process, with settings read afresh (a new token,
    /// say). Operators resume through shared::channels::pause (API and CLI), which also clears
    /// the durable record and releases the held jobs.
    pub async fn resume(&self, inbox_id: &str) -> Result<(), JobError> {
        self.unflag(inbox_id).await?;
        self.senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(inbox_id);
        Ok(())
    }

    /// Why the inbox is paused, if it is.
    pub async fn paused(&self, inbox_id: &str) -> Result<Option<String>, JobError> {
        let mut conn = self.conn().await?;
        redis::cmd("GET")
            .arg(keys::paused(self.redis.prefix(), inbox_id))
            .query_async(&mut conn)
            .await
            .map_err(JobError::transient)
    }

    async fn conn(&self) -> Result<crate::queue::RedisConn, JobError> {
        self.redis.conn().await.map_err(JobError::transient)
    }
}

/// Nothing left to send: a rerun after the outcome was stored.
fn finished(status: DeliveryStatus) -> bool {
    !matches!(status, DeliveryStatus::New | DeliveryStatus::Stored)
}

/// A broken channel needs a human: Sentry, with what Meta support asks for.
fn alert(task: &DeliveryTask, verdict: &SendError) {
    let error = verdict.error();
    sentry::with_scope(
        |scope| {
            scope.set_tag("inbox_id", &task.inbox_id);
            scope.set_tag("tenant_id", &task.tenant_id);
            scope.set_tag("channel", task.channel.as_str());
            if let Some(trace) = &error.fbtrace_id {
                scope.set_tag("fbtrace_id", trace);
            }
        },
        || {
            sentry::capture_message(
                &format!("inbox {} paused: {verdict}", task.inbox_id),
                sentry::Level::Error,
            )
        },
    );
}
