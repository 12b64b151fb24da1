//! Publishing events over Redis pub/sub in Laravel's Redis broadcaster format, so the socket
//! gateway and existing Laravel Echo tooling (laravel-echo-server) consume them unchanged:
//! `PUBLISH <BROADCAST_PREFIX><channel> {"event": "<type>", "data": <envelope>, "socket": null}`.
//!
//! `event` is always a string and `data` always an object (one malformed payload can break every
//! socket.io client on a channel). One call publishes a whole batch in one pipelined round trip,
//! in order, retried a few times with a short backoff; if Redis stays away the caller keeps the
//! outbox rows and the relay publishes them later. Redis pub/sub is fire-and-forget: a publish
//! that reached Redis counts as done even if no subscriber was listening.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde_json::json;

use super::{EventError, RecordedEvent};
use crate::{config::env_or, queue::Queues};

/// Publishes to the gateway's channels; cheap to clone.
#[derive(Clone)]
pub struct Broadcaster {
    queues: Queues,
    prefix: String,
}

impl Broadcaster {
    /// `prefix` goes in front of every channel name (Laravel's Redis prefix, e.g.
    /// `laravel_database_`; empty by default).
    pub fn new(queues: Queues, prefix: impl Into<String>) -> Self {
        Self {
            queues,
            prefix: prefix.into(),
        }
    }

    /// With `BROADCAST_PREFIX` from the environment.
    pub fn from_env(queues: Queues) -> Self {
        Self::new(queues, env_or("BROADCAST_PREFIX", ""))
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The message published for `event`.
    pub fn payload(event: &RecordedEvent) -> String {
        json!({
            "event": event.envelope.event_type,
            "data": event.envelope,
            "socket": null,
        })
        .to_string()
    }

    /// Publishes every event on each of its channels, in order; retries briefly.
    pub async fn publish(&self, events: &[RecordedEvent]) -> Result<(), EventError> {
        if events.iter().all(|e| e.channels.is_empty()) {
            return Ok(());
        }
        let attempt = || async { self.publish_once(events).await };
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(25))
                    .with_max_delay(Duration::from_millis(400))
                    .with_max_times(3)
                    .with_jitter(),
            )
            .notify(|error, after| {
                tracing::warn!(error = %error, ?after, "broadcast failed; retrying");
            })
            .await
    }

    async fn publish_once(&self, events: &[RecordedEvent]) -> Result<(), EventError> {
        let mut pipe = redis::pipe();
        for event in events {
            let payload = Self::payload(event);
            for channel in &event.channels {
                pipe.cmd("PUBLISH")
                    .arg(format!("{}{channel}", self.prefix))
                    .arg(&payload)
                    .ignore();
            }
        }
        let mut conn = self.queues.conn().await?;
        pipe.query_async::<()>(&mut conn).await?;
        metrics::counter!("switchyard_events_published_total").increment(events.len() as u64);
        Ok(())
    }
}
