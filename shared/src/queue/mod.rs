//! The job queue: Redis Streams with one consumer group per queue, driven by apalis workers.
//!
//! A job is always in exactly one place (DESIGN.md §3, invariant 3): the queue's stream (new, or
//! pending in some consumer's pending-entries list while it runs), the delayed set (waiting out a
//! backoff), `failed_jobs` in Postgres, or done (acked and deleted). Every move between Redis
//! structures is one Lua script; a move to failed jobs writes the row first and acks second.
//!
//! This module owns every Redis key name and script. Submodules by step:
//! [`enqueue`] (producers), [`consume`] (reading, heartbeats, settling), [`maintain`] (promotion
//! of due retries and reclaim of abandoned entries), [`backend`] (the apalis seam),
//! [`failed`] (the failed-jobs store) and [`inspect`] (numbers for operators).

pub mod backend;
mod coalesce;
mod connection;
pub mod consume;
pub mod enqueue;
pub mod failed;
pub mod inspect;
mod job;
pub mod keys;
pub mod maintain;
mod name;
pub mod policy;
pub mod readers;
mod scripts;
pub mod trim;

use std::sync::Arc;

pub use job::{EncodedJob, Job, JobId, NewJobParts};
pub use keys::QueueKeys;
pub use name::{InvalidQueueName, KNOWN_QUEUES, QueueName};
pub use policy::{Backoff, RetryPolicy};

/// What can go wrong talking to the queue's stores. Every variant is transient from a caller's
/// point of view: ingress answers 503, a worker leaves the job pending for a later retry.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("database: {0}")]
    Database(#[from] crate::db::DbError),
}

/// The connection `Queues::conn` hands out for short (non-blocking) commands: a clone of one
/// multiplexed connection per `Queues`. Callers name this alias, so how connections are shared
/// can change in one place.
pub(crate) type RedisConn = connection::RedisConn;

/// A handle on every queue under one key prefix: cheap to clone, shares one Redis connection
/// for short commands; blocking reads check out their own from a pool ([`readers`]).
#[derive(Clone)]
pub struct Queues {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<connection::SharedConnection>,
    coalescer: coalesce::Coalescer,
    readers: deadpool_redis::Pool,
    prefix: String,
}

impl Queues {
    /// Connects lazily: the first command dials Redis, so a process can start while Redis is
    /// still coming up and report it through `/readyz`.
    pub fn new(redis_url: &str, prefix: &str) -> Result<Self, QueueError> {
        let client = redis::Client::open(redis_url)?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared: Arc::new(connection::SharedConnection::new(client)),
                coalescer: coalesce::Coalescer::default(),
                readers: readers::pool(redis_url)?,
                prefix: prefix.to_owned(),
            }),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub fn keys(&self, queue: &QueueName) -> QueueKeys {
        QueueKeys::new(&self.inner.prefix, queue)
    }

    pub(crate) async fn conn(&self) -> Result<RedisConn, QueueError> {
        Ok(self.inner.shared.get().await?)
    }

    /// A dedicated connection for reads that block up to `block` (see [`readers`]).
    pub(crate) async fn reader_conn(
        &self,
        block: std::time::Duration,
    ) -> Result<readers::ReaderConn, QueueError> {
        readers::checkout(&self.inner.readers, block).await
    }

    /// PING on the shared connection (dialling it if needed), for readiness probes.
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }
}
