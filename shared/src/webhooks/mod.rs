//! Outbound webhook subscriptions (DESIGN.md §6): tenants subscribe URLs to Switchyard's events;
//! each logged event that matches is delivered as a signed POST (Standard Webhooks), retried on
//! the subscription's schedule, logged attempt by attempt, and a subscription that keeps failing
//! is disabled without losing its events, which [`Webhooks::recover`] delivers later.
//!
//! The module is self-contained: its inputs are an event envelope (JSON with `id`, `type`,
//! `timestamp`, `tenant_id`, `data`) and its own tables (`event_subscriptions`,
//! `webhook_deliveries`, `webhook_logs`). It writes one event itself: the transaction that
//! disables a subscription appends `subscription.disabled` to the event log and stages its
//! broadcast and fan-out in the outbox, then hands a [`SubscriptionDisabled`] to the hook given
//! to [`Webhooks::on_disabled`] (which sends them at once). The flow, one step per file:
//! [`fanout`] (event → jobs),
//! [`deliver`] (one attempt), [`record`] (what the attempt means), [`recover`], [`probe`]
//! (test-webhook). Pure parts: [`matching`], [`signing`], [`schedule`], [`ssrf`].
//!
//! See docs/webhooks.md for the decisions (retries scheduled by the handler, per-endpoint
//! limit, SSRF pinning).

pub mod client;
pub mod clock;
pub mod config;
pub mod deliver;
pub mod deliveries;
pub mod fanout;
pub mod fanout_job;
pub mod limiter;
pub mod logs;
pub mod matching;
pub mod probe;
pub mod record;
pub mod recover;
pub mod replay;
pub mod schedule;
pub mod signing;
pub mod ssrf;
pub mod subscriptions;

use std::sync::Arc;

pub use client::{AttemptResult, Verdict, WebhookClient};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::WebhookConfig;
pub use deliver::Outcome;
pub use deliveries::{DELIVER_KIND, DeliveryRow, DeliveryTask};
pub use fanout::{EventEnvelope, FanOut};
pub use probe::ProbeResult;
pub use record::SubscriptionDisabled;
pub use recover::Recovered;
pub use subscriptions::{Created, NewSubscription, Subscription, SubscriptionUpdate};

use crate::{
    db::{DbError, DbPool},
    jobs::{JobError, JobRegistry},
    queue::{Job, QueueError, Queues},
};

/// What can go wrong, named for what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Bad input from the tenant (a 400 at the API).
    #[error("{0}")]
    Invalid(String),
    /// A concurrent change won (a 409 at the API).
    #[error("{0}")]
    Conflict(String),
    /// The stores are unreachable: try again later.
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<diesel::result::Error> for WebhookError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Database(DbError::Query(e))
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for WebhookError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Database(DbError::Pool(e))
    }
}

impl From<WebhookError> for JobError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid(reason) => JobError::Permanent(reason),
            other => JobError::Transient(other.to_string()),
        }
    }
}

/// The hook told about each subscription that failures (or a 410) disabled.
pub type DisabledHook = Arc<dyn Fn(SubscriptionDisabled) + Send + Sync>;

/// Everything webhook delivery needs, cheap to clone: one per process, shared by the handler,
/// the fan-out and the API.
#[derive(Clone)]
pub struct Webhooks {
    pub(crate) db: DbPool,
    pub(crate) queues: Queues,
    pub(crate) client: WebhookClient,
    pub(crate) config: Arc<WebhookConfig>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limiter: limiter::EndpointLimiter,
    pub(crate) on_disabled: Option<DisabledHook>,
}

impl Webhooks {
    /// The oldest moment whose events are still recoverable (the retention period).
    fn retention_floor(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now - chrono::Duration::from_std(self.config.retention).unwrap_or_default()
    }

    pub fn new(db: DbPool, queues: Queues, config: WebhookConfig) -> Result<Self, WebhookError> {
        let config = Arc::new(config);
        let client = WebhookClient::new(config.clone())
            .map_err(|e| WebhookError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            limiter: limiter::EndpointLimiter::new(
                queues.clone(),
                config.endpoint_concurrency,
                // Outlives the longest attempt, so only a dead worker's slot ever expires.
                config.timeout + std::time::Duration::from_secs(15),
            ),
            db,
            queues,
            client,
            config,
            clock: Arc::new(SystemClock),
            on_disabled: None,
        })
    }

    /// Replaces the clock due times are computed from (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Called once per subscription disabled by failures, after the commit that disabled it and
    /// logged `subscription.disabled`: publish the staged event from here
    /// ([`fanout_job::emit_disabled`]), or leave it to the outbox relay.
    pub fn on_disabled(
        mut self,
        hook: impl Fn(SubscriptionDisabled) + Send + Sync + 'static,
    ) -> Self {
        self.on_disabled = Some(Arc::new(hook));
        self
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    pub fn client(&self) -> &WebhookClient {
        &self.client
    }

    pub fn db(&self) -> &DbPool {
        &self.db
    }

    /// The fleet-wide per-endpoint limit (tests and tools read its in-flight count).
    pub fn limiter(&self) -> &limiter::EndpointLimiter {
        &self.limiter
    }
}

/// Registers `webhook.deliver` on the worker's registry.
pub fn register(registry: &mut JobRegistry, webhooks: Webhooks) {
    registry.register(DELIVER_KIND, move |job: Job| {
        let webhooks = webhooks.clone();
        async move { webhooks.deliver(&job).await.map(|_| ()) }
    });
}
