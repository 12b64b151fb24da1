//! Numbers operators read: per-queue depth, in-flight, consumers, delayed and counters.

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
        let (length, delayed, next, counters): Reply =
            redis::pipe()
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
