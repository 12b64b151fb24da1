//! Custom event types (issue 7): a tenant registers an event type with a JSON Schema
//! ([`store`]), then publishes events of it ([`publish`]). A published event's `data` must
//! match the schema ([`schema`]); a valid one is appended to the event log with the same
//! envelope as built-in events and reaches webhook subscriptions through the same outbox →
//! `webhook.fanout` path. Names may not take a built-in type or a built-in entity's prefix
//! ([`name`]), so a tenant can never pass its own events off as Switchyard's.

pub mod name;
pub mod publish;
pub mod schema;
pub mod store;

pub use publish::{Entity, Publish, Published};
pub use schema::SchemaViolation;
pub use store::{CustomEventType, EventTypeUpdate, NewEventType};

use super::EventError;

/// What can go wrong, named for the answer the API gives.
#[derive(Debug, thiserror::Error)]
pub enum CustomEventError {
    /// Bad input (400), naming the field.
    #[error("{field} {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    /// The tenant already has a type of this name (409).
    #[error("an event type named {0} is already registered")]
    Duplicate(String),
    /// The tenant has no type of this name (404).
    #[error("no event type named {0}")]
    NotFound(String),
    /// `data` does not match the type's schema (422), every violation with its JSON pointer.
    #[error("data does not match the schema of {event_type}")]
    SchemaMismatch {
        event_type: String,
        violations: Vec<SchemaViolation>,
    },
    /// The Idempotency-Key was first used for a different request (422): a retry must send what
    /// the first attempt sent, and a new event needs a new key.
    #[error(
        "idempotency_key was already used for a different event (its type, entity or data differ); send a new key for a new event"
    )]
    KeyReused,
    /// The stores are unreachable: try again later (503).
    #[error(transparent)]
    Event(#[from] EventError),
}

impl CustomEventError {
    pub fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            problem: problem.into(),
        }
    }
}

impl From<diesel::result::Error> for CustomEventError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Event(EventError::Database(error))
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for CustomEventError {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Event(error.into())
    }
}
