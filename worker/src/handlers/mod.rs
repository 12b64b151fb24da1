//! Handlers of the inbound job kinds ingress produces (ingress/src/jobs.rs): a customer message
//! is stored and answered ([`inbound`] → [`respond`]), a provider status callback moves an
//! outbound message along ([`status`]).
//!
//! Each handler is idempotent by job id and by provider message id: the message's unique index
//! decides what is new, a message's `processed_at` says whether the bot already answered it, and
//! what a crashed attempt staged in the outbox is sent by the retry (`flush_origin`). Every
//! database write of a step is one transaction with its events; publishing and enqueueing
//! follow the commit. Errors come back as the queue's `JobError`: bad payloads and illegal
//! transitions are permanent, database, Redis and bot outages transient. Replies go out through
//! `delivery.send` ([`outbound`]), shared::channels' handler on the pipeline's tables.

pub mod batch;
mod inbound;
mod inbox_kinds;
pub mod outbound;
pub mod parse;
mod respond;
mod status;

use std::sync::Arc;

use shared::{
    bot::Bots,
    conversation::Conversations,
    db::DbPool,
    events::Broadcaster,
    jobs::{JobError, JobRegistry},
    queue::{Job, Queues},
};

pub use parse::MESSAGE_KINDS;
pub use status::STATUS_KINDS;

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub conversations: Conversations,
    pub bots: Bots,
    inbox_kinds: inbox_kinds::InboxKinds,
    /// Outbound settings for `delivery.send`; `None` leaves the kind unregistered.
    pub outbound: Option<Arc<dyn shared::channels::SettingsSource>>,
    /// Inbound store steps, several to a transaction when they queue up ([`batch`]).
    pub store_steps: Arc<batch::StoreBatcher>,
}

/// Store transactions a worker process runs at once, by default ([`batch`]). Few: messages that
/// wait for one are stored together (each kind of statement for all of them in one exchange),
/// which costs less per message than a transaction each. At 1,000 msg/s on two cores, 3 against
/// 8: p99 of new conversations 26–36 against 42–49 ms, of follow-ups the same, ~10 % less CPU,
/// and faster draining of a backlog (BENCHMARKS.md, "Senders looked up in one exchange").
pub const STORE_TRANSACTIONS: usize = 3;
/// Most store steps in one transaction, by default ([`batch`]).
pub const STORE_STEPS_PER_TRANSACTION: usize = 8;

impl Pipeline {
    pub fn new(db: DbPool, queues: Queues, broadcaster: Broadcaster, bots: Bots) -> Self {
        Self {
            conversations: Conversations::new(db, queues, broadcaster, "switchyard.worker"),
            bots,
            inbox_kinds: inbox_kinds::InboxKinds::default(),
            outbound: None,
            store_steps: Arc::new(batch::StoreBatcher::new(
                STORE_TRANSACTIONS,
                STORE_STEPS_PER_TRANSACTION,
            )),
        }
    }

    /// Runs at most `transactions` store transactions at once, each of at most `max_steps`
    /// jobs' store steps (1: every step in a transaction of its own).
    pub fn batching_stores(mut self, transactions: usize, max_steps: usize) -> Self {
        self.store_steps = Arc::new(batch::StoreBatcher::new(transactions, max_steps));
        self
    }

    /// With `BROADCAST_PREFIX`, `BOT_RULES_FILE`, `BOT_CACHE_SECS` from the environment, and
    /// outbound settings from the inbox tables (`WAHA_BASE_URL`… as the WAHA default).
    pub fn from_env(db: DbPool, queues: Queues) -> Result<Self, String> {
        let bots = Bots::from_env(db.clone())?;
        let broadcaster = Broadcaster::from_env(queues.clone());
        let outbound = outbound::settings_from_env(db.clone())?;
        let mut pipeline = Self::new(db, queues, broadcaster, bots);
        pipeline.outbound = Some(Arc::new(outbound));
        Ok(pipeline)
    }
}

/// Registers every inbound message and status kind, and `delivery.send` when configured.
pub fn register(registry: &mut JobRegistry, pipeline: Pipeline) {
    if let Some(settings) = &pipeline.outbound {
        let handler = outbound::handler(&pipeline.conversations, settings.clone());
        registry.register(
            shared::channels::handler::DELIVERY_SEND,
            handler.job_handler(),
        );
    }
    let pipeline = Arc::new(pipeline);
    for kind in MESSAGE_KINDS {
        let p = pipeline.clone();
        registry.register(kind, move |job: Job| {
            let p = p.clone();
            async move { traced(&job, inbound::handle(&p, &job)).await }
        });
    }
    for kind in STATUS_KINDS {
        let p = pipeline.clone();
        registry.register(kind, move |job: Job| {
            let p = p.clone();
            async move { traced(&job, status::handle(&p, &job)).await }
        });
    }
}

/// Runs a handler in a span with the job's identity, logging how it failed.
async fn traced(
    job: &Job,
    handler: impl std::future::Future<Output = Result<(), JobError>>,
) -> Result<(), JobError> {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        "pipeline",
        job_id = %job.id,
        kind = %job.kind,
        correlation_id = %job.correlation_id,
        tenant_id = job.tenant_id.as_deref().unwrap_or(""),
    );
    let result = handler.instrument(span.clone()).await;
    if let Err(error) = &result {
        span.in_scope(
            || tracing::warn!(error = %error, attempt = job.attempt, "pipeline step failed"),
        );
    }
    result
}
