//! Keeping queues moving: promote due retries back into their streams, and give entries of dead
//! consumers back to the living. Both are single Lua scripts, safe to run from every worker and
//! the scheduler at once; the scheduler's [`Lease`] only saves duplicate effort.

use std::time::Duration;

use super::{QueueError, QueueName, Queues, keys, scripts};

/// The consumer name reclaimed entries pass through on their way back to the stream.
const RECLAIMER: &str = "reclaimer";

impl Queues {
    /// Moves up to `limit` delayed jobs due at `now_ms` into the stream; returns how many.
    pub async fn promote_due(
        &self,
        queue: &QueueName,
        now_ms: i64,
        limit: usize,
    ) -> Result<u64, QueueError> {
        let keys = self.keys(queue);
        let mut conn = self.conn().await?;
        Ok(scripts::PROMOTE_DUE
            .key(&keys.delayed)
            .key(&keys.stream)
            .arg(now_ms)
            .arg(limit)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Re-adds up to `limit` entries pending longer than `min_idle` (their consumer stopped
    /// heartbeating) as new entries; returns how many.
    pub async fn reclaim_abandoned(
        &self,
        queue: &QueueName,
        min_idle: Duration,
        limit: usize,
    ) -> Result<u64, QueueError> {
        let keys = self.keys(queue);
        let mut conn = self.conn().await?;
        let result: Result<u64, redis::RedisError> = scripts::RECLAIM_ABANDONED
            .key(&keys.stream)
            .arg(keys::GROUP)
            .arg(RECLAIMER)
            .arg(min_idle.as_millis() as u64)
            .arg(limit)
            .invoke_async(&mut conn)
            .await;
        match result {
            // No group yet means no consumer ever read: nothing can be abandoned.
            Err(e) if e.to_string().contains("NOGROUP") => Ok(0),
            other => Ok(other?),
        }
    }

    /// Removes consumers that hold no pending entries and have been idle longer than `idle`
    /// (every restarted process leaves one behind). Consumers with pending entries are left
    /// alone: XGROUP DELCONSUMER would lose them; the reclaimer empties them first.
    pub async fn prune_idle_consumers(
        &self,
        queue: &QueueName,
        idle: Duration,
    ) -> Result<u64, QueueError> {
        let keys = self.keys(queue);
        let mut conn = self.conn().await?;
        let result: Result<u64, redis::RedisError> = scripts::PRUNE_CONSUMERS
            .key(&keys.stream)
            .arg(keys::GROUP)
            .arg(idle.as_millis() as u64)
            .invoke_async(&mut conn)
            .await;
        match result {
            // No stream or group yet: nobody to prune.
            Err(e)
                if e.to_string().contains("NOGROUP") || e.to_string().contains("no such key") =>
            {
                Ok(0)
            }
            other => Ok(other?),
        }
    }

    /// Promotes and reclaims until both run dry (bounded by `rounds`); returns (promoted, reclaimed).
    pub async fn maintain(
        &self,
        queue: &QueueName,
        lease: Duration,
        rounds: usize,
    ) -> Result<(u64, u64), QueueError> {
        const BATCH: usize = 500;
        let (mut promoted, mut reclaimed) = (0, 0);
        for _ in 0..rounds {
            let now = chrono::Utc::now().timestamp_millis();
            let p = self.promote_due(queue, now, BATCH).await?;
            let r = self.reclaim_abandoned(queue, lease, BATCH).await?;
            promoted += p;
            reclaimed += r;
            if p < BATCH as u64 && r < BATCH as u64 {
                break;
            }
        }
        Ok((promoted, reclaimed))
    }
}

/// Claims an occurrence of a periodic job: true for exactly one caller per occurrence, however many
/// schedulers ask (a leader whose lease lapsed mid-run and its successor included). The first
/// call for a job only records `now` as its baseline, so a newly deployed job waits for its first
/// occurrence after that, as cron does.
const CLAIM_OCCURRENCE: &str = r"
local last = redis.call('GET', KEYS[1])
if not last then
  redis.call('SET', KEYS[1], ARGV[2])
  return 0
end
if tonumber(last) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 1";

impl Queues {
    /// See [`CLAIM_OCCURRENCE`]: true when this caller should run `job`'s `occurrence_ms`.
    pub async fn claim_occurrence(
        &self,
        job: &str,
        occurrence_ms: i64,
        now_ms: i64,
    ) -> Result<bool, QueueError> {
        let mut conn = self.conn().await?;
        let claimed: i64 = redis::Script::new(CLAIM_OCCURRENCE)
            .key(keys::periodic(self.prefix(), job))
            .arg(occurrence_ms)
            .arg(now_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(claimed == 1)
    }
}

/// A Redis lease: held by one process at a time, expiring on its own if the holder dies.
pub struct Lease {
    queues: Queues,
    key: String,
    holder: String,
    ttl: Duration,
}

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

impl Lease {
    pub fn new(queues: &Queues, name: &str, holder: &str, ttl: Duration) -> Self {
        Self {
            key: keys::lease(queues.prefix(), name),
            queues: queues.clone(),
            holder: holder.to_owned(),
            ttl,
        }
    }

    /// Takes the lease if free, or extends it if we hold it; true when we hold it afterwards.
    pub async fn acquire_or_renew(&self) -> Result<bool, QueueError> {
        let mut conn = self.queues.conn().await?;
        let ttl = self.ttl.as_millis() as u64;
        let renewed: i64 = redis::Script::new(RENEW)
            .key(&self.key)
            .arg(&self.holder)
            .arg(ttl)
            .invoke_async(&mut conn)
            .await?;
        if renewed == 1 {
            return Ok(true);
        }
        let taken: Option<String> = redis::cmd("SET")
            .arg(&self.key)
            .arg(&self.holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl)
            .query_async(&mut conn)
            .await?;
        Ok(taken.is_some())
    }

    pub async fn release(&self) -> Result<(), QueueError> {
        let mut conn = self.queues.conn().await?;
        redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.holder)
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }
}
