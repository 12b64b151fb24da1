//! Send records: what the fleet knows of one outbound message's send, so that a deliveries job
//! retried after a crash does not send it twice once the provider accepted it.
//!
//! The protocol, per attempt: [`SentLedger::begin`] (atomically: absent → "in flight since now"),
//! send, then [`SentLedger::record_sent`] with the provider's message id *before* the message row
//! is updated and the job acked; on a verdict that proves the provider refused the message,
//! [`SentLedger::release`]. A retry that finds `Sent` skips the send and finishes the bookkeeping.
//!
//! The window that remains: a crash (or a timeout) after the provider accepted the message and
//! before `record_sent` returned. The retry then finds `InFlight` older than an attempt can run
//! and must choose; none of Meta's send APIs or WAHA take an idempotency key, so it sends again
//! (at least once) and the handler counts it. Email is safe here (same Message-ID, mail clients
//! collapse it) and so is the widget (it dedups on our message id). Postgres stays the authority
//! (the message row's provider id, unique per inbox); this ledger is the fast path.

use std::time::Duration;

use super::{ChannelSender, OutboundMessage, Sent, keys, verdict::SendError};
use crate::queue::Queues;

/// What is known of a message's send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendRecord {
    /// Nothing: this attempt now owns the send (the record says "in flight since now").
    Fresh,
    /// An earlier attempt began `for_ms` milliseconds ago and recorded no outcome: either it is
    /// still running (a reclaimed job's twin) or it died mid-send.
    InFlight { for_ms: u64 },
    /// The provider accepted it under this id: do not send again.
    Sent { provider_message_id: String },
}

/// How long a send record is kept: longer than any deliveries job lives, paused inboxes
/// included, so a late retry still finds it.
const SENT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Send records under one key prefix.
#[derive(Clone)]
pub struct SentLedger {
    redis: Queues,
}

impl SentLedger {
    pub fn new(redis: Queues) -> Self {
        Self { redis }
    }

    /// Claims the send of `message_id`, or says what an earlier attempt left.
    pub async fn begin(&self, message_id: &str) -> Result<SendRecord, SendError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(include_str!("lua/begin_send.lua")));
        let mut conn = self.conn().await?;
        let existing: Option<String> = SCRIPT
            .key(keys::sent(self.redis.prefix(), message_id))
            .arg(SENT_TTL.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(parse(existing.as_deref()))
    }

    /// Remembers the provider's id for `message_id`; call before acking the job.
    pub async fn record_sent(
        &self,
        message_id: &str,
        provider_message_id: &str,
    ) -> Result<(), SendError> {
        let mut conn = self.conn().await?;
        redis::cmd("SET")
            .arg(keys::sent(self.redis.prefix(), message_id))
            .arg(format!("sent:{provider_message_id}"))
            .arg("PX")
            .arg(SENT_TTL.as_millis() as u64)
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_error)
    }

    /// Forgets an in-flight claim after the provider refused the message, so the next attempt
    /// is `Fresh`. A record of an accepted send is never released.
    pub async fn release(&self, message_id: &str) -> Result<(), SendError> {
        let key = keys::sent(self.redis.prefix(), message_id);
        let mut conn = self.conn().await?;
        let current: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        if current.is_some_and(|v| v.starts_with("inflight:")) {
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<()>(&mut conn)
                .await
                .map_err(redis_error)?;
        }
        Ok(())
    }

    /// One attempt under the protocol above: skips the send when the provider already has the
    /// message, records its id before returning, releases the claim when the attempt failed.
    /// An `InFlight` record (an earlier attempt died mid-send) is the documented window: it
    /// sends again, logs a warning and counts `switchyard_delivery_uncertain_total`.
    pub async fn send_once(
        &self,
        sender: &dyn ChannelSender,
        message: &OutboundMessage,
    ) -> Result<Sent, SendError> {
        match self.begin(&message.message_id).await? {
            SendRecord::Sent {
                provider_message_id,
            } => {
                return Ok(Sent {
                    provider_message_id,
                });
            }
            SendRecord::InFlight { for_ms } => {
                tracing::warn!(
                    message_id = %message.message_id,
                    in_flight_ms = for_ms,
                    "an earlier attempt began this send and recorded no outcome; sending again"
                );
                metrics::counter!("switchyard_delivery_uncertain_total", "channel" => sender.kind().as_str())
                    .increment(1);
            }
            SendRecord::Fresh => {}
        }
        match sender.send(message).await {
            Ok(sent) => {
                // The provider has it: a failed record must not turn into a resend. The caller's
                // message row (provider id, unique per inbox) is the authority after this.
                if let Err(e) = self
                    .record_sent(&message.message_id, &sent.provider_message_id)
                    .await
                {
                    tracing::error!(message_id = %message.message_id, error = %e, "sent, but the send record was not written");
                }
                Ok(sent)
            }
            Err(verdict) => {
                // Best effort: a leftover claim only makes the next attempt log a warning.
                let _ = self.release(&message.message_id).await;
                Err(verdict)
            }
        }
    }

    async fn conn(&self) -> Result<crate::queue::RedisConn, SendError> {
        self.redis
            .conn()
            .await
            .map_err(|e| SendError::transient(format!("redis: {e}")))
    }
}

fn parse(existing: Option<&str>) -> SendRecord {
    match existing {
        None => SendRecord::Fresh,
        Some(v) => match v.split_once(':') {
            Some(("sent", id)) => SendRecord::Sent {
                provider_message_id: id.to_owned(),
            },
            Some(("inflight", since)) => {
                let since: i64 = since.parse().unwrap_or(0);
                let now = chrono::Utc::now().timestamp_millis();
                SendRecord::InFlight {
                    for_ms: now.saturating_sub(since).max(0) as u64,
                }
            }
            _ => SendRecord::InFlight { for_ms: u64::MAX },
        },
    }
}

fn redis_error(error: redis::RedisError) -> SendError {
    SendError::transient(format!("redis: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse() {
        assert_eq!(parse(None), SendRecord::Fresh);
        assert_eq!(
            parse(Some("sent:wamid.X:1")),
            SendRecord::Sent {
                provider_message_id: "wamid.X:1".into()
            }
        );
        assert!(matches!(
            parse(Some("inflight:0")),
            SendRecord::InFlight { for_ms } if for_ms > 0
        ));
    }
}
