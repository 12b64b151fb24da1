//! Events: what happened in a conversation, recorded once and told to everyone who watches.
//!
//! Every state change of the pipeline produces one [`Envelope`] (DESIGN.md §4, seed 004): it is
//! appended to `event_logs` in the same database transaction as the change ([`log`]), staged in
//! the publish outbox in that transaction too, and published over Redis pub/sub in Laravel's
//! broadcast format after the commit ([`broadcast`], [`outbox`]). Which channels an event goes
//! to is decided by one table, the matrix of DESIGN.md §5 ([`channels`]); the event names are
//! constants in [`types`].
//!
//! Publishing can fail (Redis down) without losing anything: the event is in the log and its
//! outbox row stays until a publish succeeds, by the retry right after the commit or by the
//! relay later. Subscribers may therefore see an event twice; its `id` tells them.
//! This module never decides *whether* something happens, only how it is recorded and told.

pub mod broadcast;
pub mod channels;
pub mod custom;
pub mod envelope;
pub mod forget;
pub mod log;
pub mod outbox;
pub mod types;

pub use broadcast::Broadcaster;
pub use channels::{AgentType, Route};
pub use envelope::{Envelope, EventType};
pub use log::{EventContext, NewEvent, RecordedEvent};
pub use outbox::{Effects, Outbox};

/// What can go wrong recording or publishing an event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event log: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("database pool: {0}")]
    Pool(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis connection: {0}")]
    Queue(#[from] crate::queue::QueueError),
    /// A programming error: the matrix names a channel whose id the caller did not give.
    #[error("{event} goes to the {audience} channel, but no {audience} id was given")]
    MissingRoute {
        event: &'static str,
        audience: &'static str,
    },
    #[error("invalid channel name {name:?}: {reason}")]
    InvalidChannel { name: String, reason: &'static str },
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for EventError {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Pool(error.to_string())
    }
}

impl From<crate::db::DbError> for EventError {
    fn from(error: crate::db::DbError) -> Self {
        Self::Pool(error.to_string())
    }
}
