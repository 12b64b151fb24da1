//! The conversation pipeline's domain: contacts, sessions, messages, handoff to agents, cases,
//! CSAT surveys — the lifecycle of DESIGN.md §4 as operations on Postgres.
//!
//! Every operation runs inside a [`Tx`]: one database transaction that also appends the events
//! the change produces and stages the follow-up jobs it needs, so that a change, its events and
//! its jobs exist together or not at all. After [`Tx::commit`], the caller hands the returned
//! [`Effects`] to [`Conversations::settle`], which publishes and enqueues them.
//! Status changes go through [`state`], the one place that knows the legal transitions.
//!
//! Workers (inbound jobs) and ingress (the agent API) both call in here; neither writes these
//! tables directly. This module never talks to providers or bots: it records what they did.

pub mod agents;
pub mod api_keys;
pub mod assignment;
pub mod cases;
pub mod contacts;
pub mod csat;
pub mod delivery;
pub mod delivery_store;
pub mod directory;
pub mod handoff;
pub mod messages;
pub mod models;
pub mod partial;
pub mod queries;
pub mod replies;
pub mod sessions;
pub mod settings;
pub mod state;
mod tx;

pub use models::{Agent, Case, Contact, CsatSurvey, Message, QueueItem, Session};
pub use state::IllegalTransition;
pub use tx::Tx;

use crate::{
    db::DbPool,
    events::{Broadcaster, EventContext, EventError, Outbox, outbox::Effects},
    jobs::JobError,
    queue::Queues,
};

/// Why an operation did not happen, named for what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// The state machine forbids it (409; a permanent job failure).
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// It contradicts the current state in another way (409), e.g. replying on the bot path.
    #[error("{0}")]
    Conflict(String),
    /// No such entity for this tenant (404). Another tenant's ids are "not found" too.
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    /// Bad input (400), naming the field.
    #[error("{field} {problem}")]
    Invalid { field: String, problem: String },
    #[error(transparent)]
    UnknownState(#[from] state::UnknownState),
    /// The database failed or a concurrent writer won a race: try again.
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("database pool: {0}")]
    Pool(String),
    #[error("events: {0}")]
    Events(#[from] EventError),
    /// A step that takes tenant-wide locks (a handoff) was tried in a transaction shared by
    /// several jobs ([`Tx::switch_cause`]); run it in a transaction of its own.
    #[error("a handoff needs a transaction of its own")]
    NeedsOwnTransaction,
}

impl ConversationError {
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub fn not_found(entity: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            entity,
            id: id.into(),
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(_) | Self::Pool(_) | Self::NeedsOwnTransaction => true,
            Self::Events(error) => !matches!(
                error,
                EventError::MissingRoute { .. } | EventError::InvalidChannel { .. }
            ),
            _ => false,
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for ConversationError {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Pool(error.to_string())
    }
}

impl From<crate::db::DbError> for ConversationError {
    fn from(error: crate::db::DbError) -> Self {
        Self::Pool(error.to_string())
    }
}

impl From<ConversationError> for JobError {
    fn from(error: ConversationError) -> Self {
        if error.is_transient() {
            JobError::Transient(error.to_string())
        } else {
            JobError::Permanent(error.to_string())
        }
    }
}

/// The pipeline's stores: the database, and the outbox that publishes events and enqueues
/// follow-up jobs after a commit. Cheap to clone.
#[derive(Clone)]
pub struct Conversations {
    pub db: DbPool,
    pub outbox: Outbox,
    source: &'static str,
}

impl Conversations {
    /// `source` names the writer in every event envelope (`switchyard.worker`…).
    pub fn new(db: DbPool, queues: Queues, broadcaster: Broadcaster, source: &'static str) -> Self {
        Self {
            outbox: Outbox::new(db.clone(), queues, broadcaster),
            db,
            source,
        }
    }

    /// A transaction on behalf of `tenant_id`, caused by `causation_id` (a job or request id).
    pub async fn begin(
        &self,
        tenant_id: &str,
        causation_id: &str,
    ) -> Result<Tx, ConversationError> {
        Tx::begin(
            &self.db,
            EventContext {
                tenant_id: tenant_id.to_owned(),
                causation_id: causation_id.to_owned(),
                source: self.source,
            },
            self.outbox.broadcaster().prefix(),
        )
        .await
    }

    /// Publishes and enqueues what a committed transaction staged, then gives the relay a
    /// chance to send anything older that is still waiting.
    pub async fn settle(&self, effects: Effects) {
        self.outbox.settle(effects).await;
        self.outbox.relay_if_due().await;
    }
}
