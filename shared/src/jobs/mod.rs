//! Job kinds and their handlers: a registry that maps a job's `kind` to the code that runs it,
//! so features add handlers without touching the queue.
//!
//! Handlers return a [`JobError`] named for what the queue should do next.

pub mod builtin;

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use crate::queue::Job;

/// Why a job did not succeed, and so what happens to it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// Worth another try on the queue's schedule (network, 5xx, timeouts, a locked row).
    #[error("{0}")]
    Transient(String),
    /// Another try cannot succeed (invalid payload, 4xx, illegal transition): fail at once.
    #[error("{0}")]
    Permanent(String),
    /// Try again, but not before `after` (a provider's Retry-After).
    #[error("{reason} (retry after {after:?})")]
    RetryAfter { after: Duration, reason: String },
}

impl JobError {
    pub fn transient(reason: impl std::fmt::Display) -> Self {
        Self::Transient(reason.to_string())
    }

    pub fn permanent(reason: impl std::fmt::Display) -> Self {
        Self::Permanent(reason.to_string())
    }
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;

/// The code that runs one kind of job. Must be idempotent by job id: delivery is at least once.
pub trait JobHandler: Send + Sync + 'static {
    fn handle(&self, job: Job) -> HandlerFuture;
}

impl<F, Fut> JobHandler for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    fn handle(&self, job: Job) -> HandlerFuture {
        Box::pin(self(job))
    }
}

/// Kind name → handler.
#[derive(Clone, Default)]
pub struct JobRegistry {
    handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl JobRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, kind: &str, handler: impl JobHandler) -> &mut Self {
        self.handlers.insert(kind.to_owned(), Arc::new(handler));
        self
    }

    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// Runs the job's handler; an unknown kind is a permanent failure (retrying cannot help).
    pub fn dispatch(&self, job: Job) -> HandlerFuture {
        match self.handlers.get(&job.kind) {
            Some(handler) => handler.handle(job),
            None => {
                let kind = job.kind.clone();
                Box::pin(async move {
                    Err(JobError::Permanent(format!(
                        "no handler registered for job kind {kind:?}"
                    )))
                })
            }
        }
    }
}
