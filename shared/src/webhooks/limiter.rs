//! The per-endpoint concurrency limit, fleet-wide: at most N attempts in flight to one
//! subscription across every worker process. A job over the limit is not made to wait (that
//! would hold a worker slot and delay other endpoints' jobs behind it); the handler puts it back
//! in the delayed set instead.
//!
//! The slots are a Redis sorted set per subscription, `{prefix}:webhooks:{subscription}:inflight`
//! (lease id → expiry), taken by one Lua script (`lua/acquire_slot.lua`) and given back with
//! `ZREM`. A lease outlives the longest attempt, so a worker that dies mid-attempt loses its slot
//! when the lease runs out rather than holding it forever. These keys are this module's own (the
//! queue's keys stay in `shared::queue::keys`).

use std::{sync::LazyLock, time::Duration};

use redis::Script;

use crate::queue::{QueueError, Queues};

static ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/acquire_slot.lua")));

#[derive(Clone)]
pub struct EndpointLimiter {
    queues: Queues,
    per_endpoint: usize,
    lease: Duration,
}

/// A slot held by one attempt; give it back with [`EndpointLimiter::release`].
#[derive(Debug)]
#[must_use = "a slot not released is held until its lease expires"]
pub struct Slot {
    key: String,
    lease_id: String,
}

impl EndpointLimiter {
    /// `lease`: how long a slot stays taken if it is never released (longer than an attempt).
    pub fn new(queues: Queues, per_endpoint: usize, lease: Duration) -> Self {
        Self {
            queues,
            per_endpoint: per_endpoint.max(1),
            lease,
        }
    }

    /// The in-flight set of `subscription_id`.
    pub fn key(&self, subscription_id: &str) -> String {
        format!(
            "{}:webhooks:{subscription_id}:inflight",
            self.queues.prefix()
        )
    }

    /// A slot for `subscription_id`, or `None` when it already has `per_endpoint` attempts in
    /// flight anywhere in the fleet.
    pub async fn try_acquire(&self, subscription_id: &str) -> Result<Option<Slot>, QueueError> {
        let slot = Slot {
            key: self.key(subscription_id),
            lease_id: ulid::Ulid::new().to_string(),
        };
        let mut conn = self.queues.conn().await?;
        let taken: i64 = ACQUIRE
            .key(&slot.key)
            .arg(self.per_endpoint)
            .arg(u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX))
            .arg(&slot.lease_id)
            .invoke_async(&mut conn)
            .await?;
        Ok((taken == 1).then_some(slot))
    }

    /// Gives `slot` back. A failure is only logged: the lease frees the slot anyway.
    pub async fn release(&self, slot: Slot) {
        let released = async {
            let mut conn = self.queues.conn().await?;
            redis::cmd("ZREM")
                .arg(&slot.key)
                .arg(&slot.lease_id)
                .query_async::<()>(&mut conn)
                .await?;
            Ok::<_, QueueError>(())
        };
        if let Err(error) = released.await {
            tracing::warn!(error = %error, key = %slot.key, "slot not released; its lease frees it");
        }
    }

    /// Attempts in flight to `subscription_id` (leases not yet expired), for tests and tools.
    pub async fn in_flight(&self, subscription_id: &str) -> Result<usize, QueueError> {
        let mut conn = self.queues.conn().await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let n: usize = redis::cmd("ZCOUNT")
            .arg(self.key(subscription_id))
            .arg(now_ms)
            .arg("+inf")
            .query_async(&mut conn)
            .await?;
        Ok(n)
    }
}
