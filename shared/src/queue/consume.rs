//! Consumers' side of a stream: join the group, read blocking, keep in-flight entries leased
//! (heartbeat), and settle entries once their job's effect is committed.
//!
//! Only this module and the Lua scripts it calls touch a stream's pending-entries list.

use std::time::Duration;

use redis::{
    Value,
    streams::{StreamReadOptions, StreamReadReply},
};

use super::{
    Job, QueueError, QueueKeys, QueueName, Queues, keys::GROUP, readers::ReaderConn, scripts,
};

/// One entry read from a stream: a job, or the reason its envelope could not be read.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub entry_id: String,
    pub queue: QueueName,
    pub body: Result<Job, BadEnvelope>,
    /// How many times a dead consumer abandoned this entry (a crash-loop detector; see
    /// `reclaim_abandoned.lua`).
    pub reclaims: u32,
}

/// An entry whose envelope does not decode: it goes to failed jobs as it is, with the reason.
#[derive(Clone, Debug, PartialEq)]
pub struct BadEnvelope {
    pub raw: String,
    pub reason: String,
}

/// The stats counter a settled entry is counted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    Processed,
    Failed,
}

impl Settled {
    fn field(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Failed => "failed",
        }
    }
}

/// A unique consumer name for this process: host, pid and a random suffix, so replicas that
/// share a hostname (containers, dynos) never share a pending-entries list.
pub fn unique_consumer_name() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let suffix: u32 = rand::random();
    format!("{host}-{}-{suffix:08x}", std::process::id())
}

/// One process's membership in one queue's consumer group.
#[derive(Clone)]
pub struct StreamConsumer {
    queues: Queues,
    queue: QueueName,
    keys: QueueKeys,
    name: String,
}

impl StreamConsumer {
    pub fn new(queues: &Queues, queue: QueueName, name: &str) -> Self {
        Self {
            keys: queues.keys(&queue),
            queues: queues.clone(),
            queue,
            name: name.to_owned(),
        }
    }

    pub fn queue(&self) -> &QueueName {
        &self.queue
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    /// Creates the group (and the stream) if missing. The group starts at id 0 so jobs enqueued
    /// before any worker ever ran are not skipped.
    pub async fn ensure_group(&self) -> Result<(), QueueError> {
        let mut conn = self.queues.conn().await?;
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// A connection of its own for blocking reads (from the readers' pool): a blocked
    /// XREADGROUP on the shared multiplexed connection would stall every other command, and a
    /// short-command response timeout would cut every BLOCK short.
    pub async fn reader_connection(&self, block: Duration) -> Result<ReaderConn, QueueError> {
        self.queues.reader_conn(block).await
    }

    /// XREADGROUP up to `count` new entries, blocking up to `block` when there are none.
    pub async fn read(
        &self,
        conn: &mut ReaderConn,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let options = StreamReadOptions::default()
            .group(GROUP, &self.name)
            .count(count)
            .block(block.as_millis() as usize);
        let reply: Option<StreamReadReply> =
            redis::AsyncCommands::xread_options(conn, &[&self.keys.stream], &[">"], &options)
                .await?;
        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        Ok(entries
            .map(|entry| self.decode(entry.id, &entry.map))
            .collect())
    }

    fn decode(
        &self,
        entry_id: String,
        fields: &std::collections::HashMap<String, Value>,
    ) -> Delivery {
        let text = |name: &str| match fields.get(name) {
            Some(Value::BulkString(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            Some(Value::SimpleString(s)) => Some(s.clone()),
            _ => None,
        };
        let reclaims = text("reclaims").and_then(|r| r.parse().ok()).unwrap_or(0);
        let body = match text("job") {
            None => Err(BadEnvelope {
                raw: format!("{fields:?}"),
                reason: "stream entry has no `job` field".into(),
            }),
            Some(raw) => self.parse_job(raw),
        };
        Delivery {
            entry_id,
            queue: self.queue.clone(),
            body,
            reclaims,
        }
    }

    fn parse_job(&self, raw: String) -> Result<Job, BadEnvelope> {
        match serde_json::from_str::<Job>(&raw) {
            Ok(job) if job.queue == self.queue => Ok(job),
            Ok(job) => Err(BadEnvelope {
                reason: format!(
                    "envelope names queue {:?} but was read from {:?}",
                    job.queue.as_str(),
                    self.queue.as_str()
                ),
                raw,
            }),
            Err(e) => Err(BadEnvelope {
                reason: format!("envelope does not decode: {e}"),
                raw,
            }),
        }
    }

    /// Refreshes the idle time of entries this process still works on (XCLAIM … JUSTID, which
    /// does not bump the delivery counter), so no reclaimer takes a long job from a live worker.
    pub async fn heartbeat(&self, entry_ids: &[String]) -> Result<(), QueueError> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.queues.conn().await?;
        redis::cmd("XCLAIM")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg(&self.name)
            .arg(0)
            .arg(entry_ids)
            .arg("JUSTID")
            .query_async::<Value>(&mut conn)
            .await?;
        Ok(())
    }

    /// Acks and deletes entries whose effects are committed; returns how many were still ours.
    pub async fn settle(&self, entry_ids: &[String], how: Settled) -> Result<u64, QueueError> {
        if entry_ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.queues.conn().await?;
        let mut call = scripts::SETTLE.key(&self.keys.stream);
        call.key(&self.keys.stats).arg(GROUP).arg(how.field());
        for id in entry_ids {
            call.arg(id);
        }
        Ok(call.invoke_async(&mut conn).await?)
    }

    /// Moves an in-flight entry to the delayed set as `next` (the following attempt), due at
    /// `due_ms`. Returns false when the entry was no longer ours.
    pub async fn retry_later(
        &self,
        entry_id: &str,
        next: &Job,
        due_ms: i64,
    ) -> Result<bool, QueueError> {
        let mut conn = self.queues.conn().await?;
        let moved: i64 = scripts::RETRY_LATER
            .key(&self.keys.stream)
            .key(&self.keys.delayed)
            .key(&self.keys.stats)
            .arg(GROUP)
            .arg(entry_id)
            .arg(due_ms)
            .arg(next.to_json())
            .invoke_async(&mut conn)
            .await?;
        Ok(moved == 1)
    }

    /// Gives entries read but never started back to the stream (shutdown).
    pub async fn release(&self, entry_ids: &[String]) -> Result<u64, QueueError> {
        if entry_ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.queues.conn().await?;
        let mut call = scripts::RELEASE.key(&self.keys.stream);
        call.arg(GROUP);
        for id in entry_ids {
            call.arg(id);
        }
        Ok(call.invoke_async(&mut conn).await?)
    }
}
