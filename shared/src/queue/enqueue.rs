//! Producers' side: put jobs on a queue's stream, one at a time, in a pipelined batch, or
//! atomically unless a duplicate was seen.

use std::time::Duration;

use super::{Job, JobId, QueueError, Queues, scripts};

/// What `enqueue_unless_duplicate` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Added to the stream under this entry id.
    New { entry_id: String },
    /// The dedup key was already held (by the job with this id, as recorded); nothing added.
    Duplicate { holder: String },
}

/// How long a provider message id is remembered by the Redis fast path (the database's unique
/// index stays the authority beyond it).
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);

impl Queues {
    /// XADD one job; returns the stream entry id. Returns only after Redis accepted it.
    pub async fn enqueue(&self, job: &Job) -> Result<String, QueueError> {
        let keys = self.keys(&job.queue);
        let mut conn = self.conn().await?;
        let entry_id: String = redis::cmd("XADD")
            .arg(&keys.stream)
            .arg("*")
            .arg("job")
            .arg(job.to_json())
            .query_async(&mut conn)
            .await?;
        Ok(entry_id)
    }

    /// XADD many jobs in one pipelined round trip (jobs may target different queues).
    pub async fn enqueue_batch(&self, jobs: &[Job]) -> Result<Vec<String>, QueueError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for job in jobs {
            pipe.cmd("XADD")
                .arg(self.keys(&job.queue).stream)
                .arg("*")
                .arg("job")
                .arg(job.to_json());
        }
        let mut conn = self.conn().await?;
        Ok(pipe.query_async(&mut conn).await?)
    }

    /// Enqueue unless `dedup_key` was seen within `window`: SET NX and XADD in one script, so a
    /// provider's concurrent redeliveries are acknowledged but enqueued once.
    pub async fn enqueue_unless_duplicate(
        &self,
        job: &Job,
        dedup_key: &str,
        window: Duration,
    ) -> Result<Enqueued, QueueError> {
        let keys = self.keys(&job.queue);
        let mut conn = self.conn().await?;
        let (added, value): (i64, String) = scripts::ENQUEUE_UNIQUE
            .key(&keys.stream)
            .key(keys.dedup(dedup_key))
            .arg(job.to_json_with_dedup_key(dedup_key))
            .arg(window.as_millis().max(1) as u64)
            .arg(job.id.to_string())
            .invoke_async(&mut conn)
            .await?;
        Ok(if added == 1 {
            Enqueued::New { entry_id: value }
        } else {
            Enqueued::Duplicate { holder: value }
        })
    }

    /// Schedule a job to enter its stream at `due` (epoch milliseconds).
    pub async fn enqueue_at(&self, job: &Job, due_ms: i64) -> Result<(), QueueError> {
        let keys = self.keys(&job.queue);
        let mut conn = self.conn().await?;
        redis::cmd("ZADD")
            .arg(&keys.delayed)
            .arg(due_ms)
            .arg(job.to_json())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Forget a dedup key (used when a caller must let a redelivery through again).
    pub async fn forget_dedup(&self, job: &Job, dedup_key: &str) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        redis::cmd("DEL")
            .arg(self.keys(&job.queue).dedup(dedup_key))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }
}

impl Job {
    pub fn id_string(&self) -> String {
        JobId::to_string(&self.id)
    }
}
