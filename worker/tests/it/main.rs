//! Integration tests of the queue and the worker against the real Redis and Postgres.
//! Each test gets its own database and key prefix (shared::testkit).

mod binary;
mod cli_failed;
mod cli_queues;
mod invariants;
mod retries;

use std::{future::Future, sync::Arc, time::Duration};

use serde_json::json;
use shared::{
    jobs::JobRegistry,
    queue::{
        Job, QueueName, Queues, RetryPolicy,
        backend::{ConsumerOptions, run_worker},
        consume::StreamConsumer,
        failed::FailedJobs,
    },
    testkit::{TestDb, TestRedis},
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A test's own stores plus the workers it started.
pub struct Harness {
    pub redis: TestRedis,
    pub db: TestDb,
    pub stop: CancellationToken,
    workers: Vec<JoinHandle<()>>,
}

impl Harness {
    pub async fn new() -> Self {
        Self {
            redis: TestRedis::new(),
            db: TestDb::new().await,
            stop: CancellationToken::new(),
            workers: Vec::new(),
        }
    }

    pub fn queues(&self) -> &Queues {
        &self.redis.queues
    }

    /// Options for tests: no background maintenance (tests promote and reclaim explicitly, so
    /// time is driven by the test, not by sleeps), short blocking reads.
    pub fn options(queue: &str) -> ConsumerOptions {
        ConsumerOptions {
            block: Duration::from_millis(200),
            maintenance_every: Duration::from_secs(3600),
            ..ConsumerOptions::for_policy(RetryPolicy::for_queue(queue))
        }
    }

    /// Starts one in-process worker (its own consumer name) on `queue`.
    pub fn start(
        &mut self,
        queue: &str,
        registry: JobRegistry,
        options: ConsumerOptions,
    ) -> CancellationToken {
        let stop = self.stop.child_token();
        let consumer = StreamConsumer::new(
            self.queues(),
            q(queue),
            &shared::testkit::unique("consumer"),
        );
        let failed = FailedJobs::new(self.db.pool.clone());
        let run = run_worker(consumer, options, failed, registry, stop.clone());
        self.workers.push(tokio::spawn(async move {
            run.await.expect("worker runs");
        }));
        stop
    }

    pub async fn stop_all(&mut self) {
        self.stop.cancel();
        for worker in self.workers.drain(..) {
            worker.await.expect("worker task");
        }
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(shared::testkit::redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    pub async fn xlen(&self, queue: &str) -> u64 {
        self.queues().stats(&q(queue)).await.unwrap().length
    }

    pub async fn pending(&self, queue: &str) -> u64 {
        self.queues().stats(&q(queue)).await.unwrap().pending
    }

    pub async fn delayed(&self, queue: &str) -> Vec<(String, i64)> {
        let mut conn = self.redis().await;
        redis::cmd("ZRANGE")
            .arg(&self.queues().keys(&q(queue)).delayed)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    pub async fn receipts(&self) -> i64 {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db.pool.get().await.unwrap();
        diesel::sql_query("SELECT count(*) AS n FROM job_receipts")
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n
    }

    pub fn failed_jobs(&self) -> FailedJobs {
        FailedJobs::new(self.db.pool.clone())
    }
}

pub fn q(name: &str) -> QueueName {
    QueueName::new(name).unwrap()
}

pub fn job(queue: &str, kind: &str) -> Job {
    Job::new(q(queue), kind, json!({}))
}

/// Polls `check` until it holds. The deadline only turns a hang into a failure with a message;
/// no test asserts on how fast anything happens.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A registry with the built-in kinds.
pub fn builtin(h: &Harness) -> JobRegistry {
    let mut registry = JobRegistry::new();
    shared::jobs::builtin::register(&mut registry, h.db.pool.clone());
    registry
}

/// A gate a handler waits on, so a test can look at the queue while a job is in flight.
#[derive(Clone)]
pub struct Gate {
    entered: Arc<tokio::sync::Semaphore>,
    open: Arc<tokio::sync::Notify>,
    opened: Arc<std::sync::atomic::AtomicBool>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub fn new() -> Self {
        Self {
            entered: Arc::new(tokio::sync::Semaphore::new(0)),
            open: Arc::default(),
            opened: Arc::default(),
        }
    }

    pub async fn pass(&self) {
        self.entered.add_permits(1);
        while !self.opened.load(std::sync::atomic::Ordering::SeqCst) {
            let notified = self.open.notified();
            if self.opened.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            notified.await;
        }
    }

    pub async fn wait_entered(&self, n: u32) {
        self.entered.acquire_many(n).await.unwrap().forget();
    }

    pub fn open(&self) {
        self.opened.store(true, std::sync::atomic::Ordering::SeqCst);
        self.open.notify_waiters();
    }
}
