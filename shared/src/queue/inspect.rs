//! Numbers operators read: per-queue depth, in-flight, consumers, delayed and counters.
//!
//! [`Queues::stats`] is the cheap summary the workers publish as gauges; [`Queues::detail`] adds
//! what `worker queues` shows an on-call engineer: each consumer with its idle time, and the age
//! of the oldest job still in the stream and of the oldest one in flight. Read-only: nothing here
//! changes a queue.

use redis::Value;

use super::{QueueError, QueueName, Queues, keys::GROUP};

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct QueueStats {
    pub queue: String,
    /// Entries in the stream (new and in flight).
    pub length: u64,
    /// Entries read and not yet settled.
    pub pending: u64,
    /// Entries not yet read by the group.
    pub lag: Option<u64>,
    pub consumers: u64,
    pub delayed: u64,
    /// Due time (epoch ms) of the next delayed job.
    pub next_due_ms: Option<i64>,
    pub processed: u64,
    pub failed: u64,
    pub retried: u64,
}

impl Queues {
    pub async fn stats(&self, queue: &QueueName) -> Result<QueueStats, QueueError> {
        let keys = self.keys(queue);
        let mut conn = self.conn().await?;
        type Reply = (u64, u64, Vec<(String, i64)>, Vec<(String, u64)>);
        let (length, delayed, next, counters): Reply = redis::pipe()
            .cmd("XLEN")
            .arg(&keys.stream)
            .cmd("ZCARD")
            .arg(&keys.delayed)
            .cmd("ZRANGE")
            .arg(&keys.delayed)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .cmd("HGETALL")
            .arg(&keys.stats)
            .query_async(&mut conn)
            .await?;
        let counter = |name: &str| {
            counters
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| *v)
                .unwrap_or(0)
        };
        let mut stats = QueueStats {
            queue: queue.to_string(),
            length,
            delayed,
            next_due_ms: next.first().map(|(_, score)| *score),
            processed: counter("processed"),
            failed: counter("failed"),
            retried: counter("retried"),
            ..Default::default()
        };
        let groups: Result<Vec<Vec<Value>>, _> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&keys.stream)
            .query_async(&mut conn)
            .await;
        for group in groups.unwrap_or_default() {
            let fields = pairs(&group);
            if fields
                .iter()
                .any(|(k, v)| k == "name" && as_text(v).as_deref() == Some(GROUP))
            {
                for (k, v) in fields {
                    match k.as_str() {
                        "consumers" => stats.consumers = as_u64(&v).unwrap_or(0),
                        "pending" => stats.pending = as_u64(&v).unwrap_or(0),
                        "lag" => stats.lag = as_u64(&v),
                        _ => {}
                    }
                }
            }
        }
        Ok(stats)
    }
}

/// One consumer of a queue's group, as XINFO CONSUMERS reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerInfo {
    pub name: String,
    /// Entries it has read and not settled.
    pub pending: u64,
    /// Milliseconds since it last read or heartbeated (XCLAIM refreshes it).
    pub idle_ms: u64,
}

/// Everything `worker queues` shows for one queue, read at one moment of Redis's clock.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct QueueDetail {
    #[serde(flatten)]
    pub stats: QueueStats,
    /// Redis's clock when this was read (epoch ms); ages below count from it.
    pub now_ms: i64,
    /// Whether the queue's consumer group exists (some worker has joined it).
    pub has_group: bool,
    pub consumer_list: Vec<ConsumerInfo>,
    /// When the oldest entry still in the stream (waiting or in flight) was added (epoch ms).
    /// Settled entries are deleted, so this is the oldest unfinished job; a reclaimed or released
    /// job is re-added, so its age counts from then.
    pub oldest_entry_ms: Option<i64>,
    /// When the oldest in-flight entry was added (epoch ms).
    pub oldest_pending_ms: Option<i64>,
}

impl QueueDetail {
    pub fn oldest_age_ms(&self) -> Option<i64> {
        self.oldest_entry_ms.map(|t| (self.now_ms - t).max(0))
    }

    pub fn oldest_pending_age_ms(&self) -> Option<i64> {
        self.oldest_pending_ms.map(|t| (self.now_ms - t).max(0))
    }

    /// Jobs not yet read: the group's lag, or the whole stream when no worker ever joined.
    /// `None` when Redis cannot tell (entries were deleted since the group's last read).
    pub fn waiting(&self) -> Option<u64> {
        if self.has_group {
            self.stats.lag
        } else {
            Some(self.stats.length)
        }
    }
}

impl Queues {
    /// [`Self::stats`] plus consumers, oldest ages and Redis's clock.
    pub async fn detail(&self, queue: &QueueName) -> Result<QueueDetail, QueueError> {
        let stats = self.stats(queue).await?;
        let keys = self.keys(queue);
        let mut conn = self.conn().await?;
        let ((secs, micros), first): ((i64, i64), Vec<Value>) = redis::pipe()
            .cmd("TIME")
            .cmd("XRANGE")
            .arg(&keys.stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let oldest_entry_ms = first
            .first()
            .and_then(entry_id_of)
            .and_then(|id| id_ms(&id));
        let mut detail = QueueDetail {
            stats,
            now_ms: secs * 1000 + micros / 1000,
            oldest_entry_ms,
            ..Default::default()
        };
        // No group yet (no worker ever read) means no consumers and nothing in flight.
        let consumers: Result<Vec<Vec<Value>>, _> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&keys.stream)
            .arg(GROUP)
            .query_async(&mut conn)
            .await;
        detail.has_group = consumers.is_ok();
        detail.consumer_list = consumers
            .unwrap_or_default()
            .iter()
            .map(|c| consumer_info(c))
            .collect();
        let summary: Result<Vec<Value>, _> = redis::cmd("XPENDING")
            .arg(&keys.stream)
            .arg(GROUP)
            .query_async(&mut conn)
            .await;
        detail.oldest_pending_ms = summary
            .ok()
            .and_then(|s| s.get(1).and_then(as_text))
            .and_then(|id| id_ms(&id));
        Ok(detail)
    }

    /// Whether the queue's stream exists (some producer or worker ever used the queue).
    pub async fn stream_exists(&self, queue: &QueueName) -> Result<bool, QueueError> {
        let mut conn = self.conn().await?;
        let n: i64 = redis::cmd("EXISTS")
            .arg(self.keys(queue).stream)
            .query_async(&mut conn)
            .await?;
        Ok(n == 1)
    }
}

fn consumer_info(fields: &[Value]) -> ConsumerInfo {
    let mut info = ConsumerInfo::default();
    for (k, v) in pairs(fields) {
        match k.as_str() {
            "name" => info.name = as_text(&v).unwrap_or_default(),
            "pending" => info.pending = as_u64(&v).unwrap_or(0),
            "idle" => info.idle_ms = as_u64(&v).unwrap_or(0),
            _ => {}
        }
    }
    info
}

/// The id of an XRANGE reply entry (`[id, [field, value, …]]`).
fn entry_id_of(entry: &Value) -> Option<String> {
    match entry {
        Value::Array(parts) => as_text(parts.first()?),
        _ => None,
    }
}

/// The millisecond part of a stream entry id (`<ms>-<seq>`).
pub fn id_ms(entry_id: &str) -> Option<i64> {
    entry_id.split('-').next()?.parse().ok()
}

fn pairs(values: &[Value]) -> Vec<(String, Value)> {
    values
        .chunks(2)
        .filter_map(|kv| Some((as_text(kv.first()?)?, kv.get(1)?.clone())))
        .collect()
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => as_text(other)?.parse().ok(),
    }
}
