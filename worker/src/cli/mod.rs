//! The on-call subcommands of `worker`: `failed …` (the dead set: list, show, retry, forget,
//! flush) and `queues` (the monitor), the Rust counterparts of `php artisan queue:failed`,
//! `queue:retry`, `queue:flush` and `queue:monitor`.
//!
//! Each command is a thin layer over library functions in `shared::queue` (so the ingress HTTP API
//! can offer the same operations) plus output formatting. Every outcome maps to one documented
//! exit code ([`Exit`]) so scripts and alerts can tell "no such job" from "unknown queue" from
//! "threshold crossed" from "cannot reach the stores". Nothing here logs to stdout: stdout is for
//! results (tables or `--json`), stderr for progress, warnings and errors.

pub mod failed;
pub mod format;
pub mod inboxes;
pub mod queues;
pub mod retry;

use std::process::ExitCode;

use shared::{
    config::StoreConfig,
    queue::{KNOWN_QUEUES, QueueError, QueueName, Queues, failed::FailedJobs},
};

/// Exit codes of the on-call subcommands (documented in the README's runbook).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// Redis or Postgres could not be reached, or another unexpected error.
    Unavailable = 1,
    /// Bad arguments: unknown flag, malformed id, unparsable time or duration (clap's own code).
    Usage = 2,
    /// An id given has no failed job (the others were still acted on).
    NotFound = 3,
    /// `--queue` names a queue that does not exist.
    UnknownQueue = 4,
    /// A destructive command was not confirmed (`flush` without `--yes` and no terminal, or "no").
    Refused = 5,
    /// `queues`: a `--max-*` threshold was crossed.
    Threshold = 6,
    /// `retry`: some selected jobs could not be retried (their envelope does not decode).
    Partial = 7,
    /// `inboxes resume`: the inbox is not paused.
    NotPaused = 8,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Why a command stopped; the message is printed as `error: …` on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    UnknownQueue(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unavailable(String),
}

impl CliError {
    pub fn exit(&self) -> Exit {
        match self {
            Self::NotFound(_) => Exit::NotFound,
            Self::UnknownQueue(_) => Exit::UnknownQueue,
            Self::Refused(_) => Exit::Refused,
            Self::Unavailable(_) => Exit::Unavailable,
        }
    }
}

impl From<QueueError> for CliError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Database(e) => Self::from(e),
            other => Self::Unavailable(format!("cannot reach Redis (REDIS_URL): {other}")),
        }
    }
}

impl From<shared::db::DbError> for CliError {
    fn from(e: shared::db::DbError) -> Self {
        Self::Unavailable(format!("cannot reach Postgres (DATABASE_URL): {e}"))
    }
}

/// The stores every command talks to; both connect lazily, on first use.
pub struct Stores {
    pub queues: Queues,
    pub failed: FailedJobs,
}

impl Stores {
    pub fn new(config: &StoreConfig) -> Result<Self, CliError> {
        let queues = Queues::new(config.redis_url.expose(), &config.prefix)?;
        let db = shared::db::pool(config.database_url.expose(), 4)?;
        Ok(Self {
            queues,
            failed: FailedJobs::new(db),
        })
    }

    /// A `--queue` value as a queue that exists: a product queue, or one whose stream exists or
    /// that has failed jobs (custom queues a worker was started with).
    pub async fn resolve_queue(&self, name: &str) -> Result<QueueName, CliError> {
        let queue = QueueName::new(name).map_err(|e| CliError::UnknownQueue(e.to_string()))?;
        if KNOWN_QUEUES.contains(&queue.as_str())
            || self.queues.stream_exists(&queue).await.unwrap_or(false)
            || self.failed.count(Some(queue.as_str())).await? > 0
        {
            return Ok(queue);
        }
        Err(CliError::UnknownQueue(format!(
            "unknown queue {name:?}: known queues are {}",
            KNOWN_QUEUES.join(", ")
        )))
    }
}

/// Prints the error and turns a command's result into the process's exit code.
pub fn finish(result: Result<Exit, CliError>) -> ExitCode {
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit().into()
        }
    }
}
