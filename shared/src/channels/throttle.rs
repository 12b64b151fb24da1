//! Send-rate control: a token bucket per inbox, in Redis so it holds across every worker process,
//! and a hold per recipient for WhatsApp's pair rate limit (131056).
//!
//! Before each send the deliveries handler asks for a [`Permit`]; after a throttle verdict it
//! calls [`Throttle::on_verdict`], which halves the inbox's rate and stops its sends for the
//! provider's Retry-After (or only that recipient's). The rate then recovers linearly to its
//! maximum (AIMD, as TCP does), so one 429 slows the inbox for a while instead of for ever.
//! The bucket uses Redis's clock, one for the whole fleet.

use std::time::Duration;

use super::{keys, verdict::SendError, verdict::ThrottleScope};
use crate::{inboxes::InboxKind, queue::Queues};

/// One inbox's limits; see [`BucketConfig::for_kind`] for the defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketConfig {
    /// Burst: sends allowed back to back after a quiet period.
    pub capacity: u32,
    /// Sustained sends per second when the provider is happy.
    pub rate_per_sec: f64,
    /// The floor a throttle verdict never halves below.
    pub min_rate_per_sec: f64,
    /// How long the rate takes to climb back from the floor to the maximum.
    pub recovery: Duration,
}

impl BucketConfig {
    /// Defaults per channel: WhatsApp Cloud's default throughput is 80 messages/s per number;
    /// Messenger's Send API allows a few hundred calls/s per page; a WAHA number is a phone and is
    /// banned for bursts; SMTP relays limit connections; the widget is our own socket.
    pub fn for_kind(kind: InboxKind) -> Self {
        let (capacity, rate_per_sec) = match kind {
            InboxKind::WhatsappCloud => (80, 80.0),
            InboxKind::Messenger => (100, 100.0),
            InboxKind::Waha => (5, 1.0),
            InboxKind::Email => (10, 5.0),
            InboxKind::Widget => (1000, 1000.0),
        };
        Self {
            capacity,
            rate_per_sec,
            min_rate_per_sec: (rate_per_sec / 64.0).max(0.05),
            recovery: Duration::from_secs(300),
        }
    }
}

impl BucketConfig {
    /// [`Self::for_kind`], overridden by `SEND_RATE_<KIND>` (e.g. `SEND_RATE_WAHA=0.5/3`:
    /// sends per second, then optionally the burst) so operators can tune a channel without a
    /// release. A malformed value is ignored with a warning rather than stopping deliveries.
    pub fn from_env(kind: InboxKind) -> Self {
        let name = format!("SEND_RATE_{}", kind.as_str().to_ascii_uppercase());
        let default = Self::for_kind(kind);
        match std::env::var(&name) {
            Ok(value) => default.with_override(&value).unwrap_or_else(|| {
                tracing::warn!(variable = %name, value, "ignored: expected <rate>[/<burst>]");
                default
            }),
            Err(_) => default,
        }
    }

    /// This config with `rate[/burst]` applied; `None` when `value` does not parse.
    pub fn with_override(self, value: &str) -> Option<Self> {
        let (rate, burst) = match value.split_once('/') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (value, None),
        };
        let rate: f64 = rate.trim().parse().ok().filter(|r: &f64| *r > 0.0)?;
        let capacity = match burst {
            Some(b) => b.trim().parse().ok().filter(|b: &u32| *b > 0)?,
            None => self.capacity,
        };
        Some(Self {
            capacity,
            rate_per_sec: rate,
            min_rate_per_sec: self.min_rate_per_sec.min(rate),
            ..self
        })
    }
}

/// The answer to "may this inbox send now?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    Granted,
    /// Not before this long (the bucket is empty, the inbox or the recipient is on hold).
    Wait(Duration),
}

/// How long bucket state outlives its last use.
const BUCKET_TTL: Duration = Duration::from_secs(24 * 3600);

/// Token buckets and recipient holds under one key prefix.
#[derive(Clone)]
pub struct Throttle {
    redis: Queues,
}

impl Throttle {
    pub fn new(redis: Queues) -> Self {
        Self { redis }
    }

    /// Takes a token for `inbox_id` unless `recipient` is on hold or the bucket is empty.
    pub async fn try_acquire(
        &self,
        inbox_id: &str,
        recipient: &str,
        config: &BucketConfig,
    ) -> Result<Permit, SendError> {
        if let Some(hold) = self.recipient_hold(inbox_id, recipient).await? {
            return Ok(Permit::Wait(hold));
        }
        let (wait_ms, _rate) = self
            .bucket(inbox_id, config, "take", Duration::ZERO)
            .await?;
        Ok(match wait_ms {
            0 => Permit::Granted,
            ms => Permit::Wait(Duration::from_millis(ms)),
        })
    }

    /// Waits for a token when the wait is at most `max_wait`; a longer wait is a throttle
    /// verdict, so the job goes back to the queue instead of holding a worker slot.
    pub async fn acquire(
        &self,
        inbox_id: &str,
        recipient: &str,
        config: &BucketConfig,
        max_wait: Duration,
    ) -> Result<(), SendError> {
        loop {
            match self.try_acquire(inbox_id, recipient, config).await? {
                Permit::Granted => return Ok(()),
                Permit::Wait(wait) if wait <= max_wait => tokio::time::sleep(wait).await,
                Permit::Wait(wait) => {
                    return Err(SendError::Throttled {
                        scope: ThrottleScope::Inbox,
                        retry_after: Some(wait),
                        error: super::ProviderError::message(format!(
                            "inbox {inbox_id} is sending at its limit"
                        )),
                    });
                }
            }
        }
    }

    /// Applies a verdict: a throttle slows the inbox (or holds the recipient); others are no-ops.
    /// Returns the inbox's new rate when it changed.
    pub async fn on_verdict(
        &self,
        inbox_id: &str,
        recipient: &str,
        config: &BucketConfig,
        verdict: &SendError,
    ) -> Result<Option<f64>, SendError> {
        let SendError::Throttled {
            scope, retry_after, ..
        } = verdict
        else {
            return Ok(None);
        };
        let pause = retry_after.unwrap_or(super::verdict::DEFAULT_THROTTLE_DELAY);
        match scope {
            ThrottleScope::Inbox => Ok(Some(self.slow_down(inbox_id, config, pause).await?)),
            ThrottleScope::Recipient => {
                self.hold_recipient(inbox_id, recipient, pause).await?;
                Ok(None)
            }
        }
    }

    /// Halves the inbox's rate and stops its sends for `pause`; returns the new rate.
    pub async fn slow_down(
        &self,
        inbox_id: &str,
        config: &BucketConfig,
        pause: Duration,
    ) -> Result<f64, SendError> {
        let (_wait, rate) = self.bucket(inbox_id, config, "slow", pause).await?;
        Ok(rate)
    }

    /// Stops sends to one recipient of one inbox for `pause`.
    pub async fn hold_recipient(
        &self,
        inbox_id: &str,
        recipient: &str,
        pause: Duration,
    ) -> Result<(), SendError> {
        let key = keys::recipient_hold(self.redis.prefix(), inbox_id, recipient);
        let mut conn = self.conn().await?;
        redis::cmd("SET")
            .arg(key)
            .arg(1)
            .arg("PX")
            .arg(pause.as_millis().max(1) as u64)
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_error)
    }

    /// How long `recipient` stays on hold, if they are.
    pub async fn recipient_hold(
        &self,
        inbox_id: &str,
        recipient: &str,
    ) -> Result<Option<Duration>, SendError> {
        let key = keys::recipient_hold(self.redis.prefix(), inbox_id, recipient);
        let mut conn = self.conn().await?;
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok((ttl > 0).then(|| Duration::from_millis(ttl as u64)))
    }

    async fn bucket(
        &self,
        inbox_id: &str,
        config: &BucketConfig,
        op: &str,
        pause: Duration,
    ) -> Result<(u64, f64), SendError> {
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(include_str!("lua/token_bucket.lua")));
        let span = (config.rate_per_sec - config.min_rate_per_sec).max(0.0);
        let recovery = span / config.recovery.as_secs_f64().max(1.0);
        let mut conn = self.conn().await?;
        let (wait, rate): (u64, String) = SCRIPT
            .key(keys::bucket(self.redis.prefix(), inbox_id))
            .arg(op)
            .arg(config.capacity)
            .arg(config.rate_per_sec)
            .arg(config.min_rate_per_sec)
            .arg(recovery)
            .arg(pause.as_millis() as u64)
            .arg(BUCKET_TTL.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok((wait, rate.parse().unwrap_or(config.min_rate_per_sec)))
    }

    async fn conn(&self) -> Result<crate::queue::RedisConn, SendError> {
        self.redis
            .conn()
            .await
            .map_err(|e| SendError::transient(format!("redis: {e}")))
    }
}

fn redis_error(error: redis::RedisError) -> SendError {
    SendError::transient(format!("redis: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_rate_and_burst() {
        let base = BucketConfig::for_kind(InboxKind::Waha);
        let tuned = base.with_override("0.5/3").unwrap();
        assert_eq!((tuned.rate_per_sec, tuned.capacity), (0.5, 3));
        assert_eq!(base.with_override("2").unwrap().capacity, base.capacity);
        for bad in ["", "fast", "0", "1/0", "-1/2"] {
            assert_eq!(base.with_override(bad), None, "{bad}");
        }
    }
}
