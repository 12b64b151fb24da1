//! Producers' side: put jobs on a queue's stream, one at a time, in a pipelined batch, or
//! atomically unless a duplicate was seen.

use std::time::Duration;

use tokio::sync::oneshot;

use super::{
    EncodedJob, Job, JobId, QueueError, QueueKeys, QueueName, Queues, coalesce::Submission,
};

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

    /// Enqueue unless `dedup_key` was seen within `window`: the dedup check (GET, then SET with
    /// an expiry) and the XADD run in one script, so a provider's concurrent redeliveries are
    /// acknowledged but enqueued once. Concurrent calls share round trips ([`super::coalesce`]).
    pub async fn enqueue_unless_duplicate(
        &self,
        job: &Job,
        dedup_key: &str,
        window: Duration,
    ) -> Result<Enqueued, QueueError> {
        let json = job.to_json_with_dedup_key(dedup_key);
        self.store_unless_duplicate(&job.queue, job.id, json, dedup_key, window)
            .await
    }

    /// [`Queues::enqueue_unless_duplicate`] for an envelope already written as JSON (whose
    /// `dedup_key` field the caller set to `dedup_key`).
    pub async fn enqueue_encoded_unless_duplicate(
        &self,
        job: EncodedJob,
        dedup_key: &str,
        window: Duration,
    ) -> Result<Enqueued, QueueError> {
        self.store_unless_duplicate(&job.queue, job.id, job.json, dedup_key, window)
            .await
    }

    async fn store_unless_duplicate(
        &self,
        queue: &QueueName,
        id: JobId,
        json: String,
        dedup_key: &str,
        window: Duration,
    ) -> Result<Enqueued, QueueError> {
        let (reply, answer) = oneshot::channel();
        let submission = Submission {
            stream: QueueKeys::stream_of(self.prefix(), queue),
            dedup_key: QueueKeys::dedup_of(self.prefix(), queue, dedup_key),
            window_ms: window.as_millis().clamp(1, u64::MAX as u128) as u64,
            job_id: id.to_string(),
            json,
            reply,
        };
        self.submit(submission, answer).await
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
