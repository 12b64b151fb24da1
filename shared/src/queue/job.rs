//! The job envelope: what travels through a queue's stream, delayed set and failed jobs.
//!
//! The envelope is plain JSON so that an operator can read it with `redis-cli` and so that other
//! languages can enqueue. The handler-specific part lives in `payload`; everything the queue needs
//! to route, retry and trace a job sits beside it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::QueueName;

/// A job id: a ULID, so ids sort by creation time and are safe in keys and channel names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Ulid);

impl JobId {
    pub fn new() -> Self {
        Self(Ulid::new())
    }

    pub fn parse(text: &str) -> Option<Self> {
        Ulid::from_string(text).ok().map(Self)
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The envelope of DESIGN.md §3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    pub queue: QueueName,
    pub payload: serde_json::Value,
    /// 1 for the first run; a retry is enqueued with `attempt + 1`.
    pub attempt: u32,
    pub max_attempts: u32,
    pub enqueued_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Job {
    /// A first attempt of `kind` on `queue`; the queue's policy decides `max_attempts`.
    pub fn new(queue: QueueName, kind: impl Into<String>, payload: serde_json::Value) -> Self {
        let id = JobId::new();
        Self {
            id,
            kind: kind.into(),
            max_attempts: queue.policy().tries,
            queue,
            payload,
            attempt: 1,
            enqueued_at: Utc::now(),
            tenant_id: None,
            correlation_id: id.to_string(),
            dedup_key: None,
            last_error: None,
        }
    }

    pub fn with_correlation_id(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = correlation_id.into();
        self
    }

    pub fn with_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    pub fn with_dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    /// The envelope of the next attempt after `error`.
    pub fn next_attempt(&self, error: &str) -> Self {
        Self {
            attempt: self.attempt + 1,
            last_error: Some(error.to_owned()),
            ..self.clone()
        }
    }

    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    pub fn to_json(&self) -> String {
        // Serialising a struct of strings, numbers and a JSON value cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
