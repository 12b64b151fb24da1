//! The worker process: one apalis worker per queue, all consuming through `shared::queue`'s
//! Redis Streams backend, sharing one Redis pool, one Postgres pool and one job registry.
//!
//! `run` is the whole process minus argument parsing, so tests start exactly what production
//! runs.

pub mod admin;
mod admin_demo;
pub mod handlers;
pub mod registry;

use std::time::Duration;

use shared::{
    config::StoreConfig,
    db,
    queue::{
        QueueName, Queues, RetryPolicy,
        backend::{ConsumerOptions, run_worker},
        consume::{StreamConsumer, unique_consumer_name},
        failed::FailedJobs,
    },
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Everything `worker --queue=…` needs, from flags and environment.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub stores: StoreConfig,
    pub queues: Vec<QueueName>,
    /// Jobs run at once per queue by this process.
    pub concurrency: usize,
    /// `--tries`: overrides the queue's and the job's own number of attempts.
    pub tries: Option<u32>,
    /// `--timeout`: overrides the queue's per-attempt timeout (and lease).
    pub timeout: Option<Duration>,
    /// How long in-flight jobs may take to finish after SIGTERM (Heroku allows 30 s in all).
    pub grace: Duration,
    /// Most entries one XREADGROUP fetches.
    pub batch: usize,
    /// How long one XREADGROUP blocks on an empty stream.
    pub block: Duration,
    /// Postgres connections this process keeps (`None`: [`DEFAULT_DB_POOL_SIZE`]; at most the
    /// jobs it runs at once).
    pub db_pool_size: Option<usize>,
    /// How long the outbox rows of what went out gather before one cleanup deletes them all
    /// (`shared::events::forget`; 20 ms by default).
    pub outbox_cleanup_after: Duration,
    /// Inbound store transactions run at once, and most jobs' store steps in one
    /// (`handlers::batch`; 8 and 8 by default, 1 step: no batching).
    pub store_transactions: usize,
    pub store_steps: usize,
}

/// Postgres connections a worker process keeps by default. Fewer than the jobs it runs at once:
/// a job holds a connection only for its transactions (an HTTP bot is asked, and a delivery
/// sent, outside any), and connections beyond what the database's cores can run at once only add
/// contention. Measured with pipeline-bench at 1,000 messages/s on two cores: Postgres needed
/// 5–10 % less CPU per message with 16 connections than with 32, and p99 fell (BENCHMARKS.md,
/// pipeline, "Kept prepared").
pub const DEFAULT_DB_POOL_SIZE: usize = 16;

impl WorkerConfig {
    /// The Postgres pool's size: as configured, else the default; never more than the jobs run
    /// at once, never fewer than two (a job's transaction and its outbox cleanup).
    pub fn db_pool_size(&self) -> usize {
        let jobs_at_once = self.concurrency.max(1) * self.queues.len().max(1);
        self.db_pool_size
            .unwrap_or(DEFAULT_DB_POOL_SIZE)
            .min(jobs_at_once)
            .max(2)
    }

    /// The options one queue is consumed with: its policy from the DESIGN table, then the flags.
    pub fn consumer_options(&self, queue: &QueueName) -> ConsumerOptions {
        let mut policy = RetryPolicy::for_queue(queue.as_str());
        if let Some(tries) = self.tries {
            policy.tries = tries.max(1);
        }
        if let Some(timeout) = self.timeout {
            policy.timeout = timeout;
        }
        ConsumerOptions {
            concurrency: self.concurrency.max(1),
            batch: self.batch.max(1),
            block: self.block,
            tries_override: self.tries,
            ..ConsumerOptions::for_policy(policy)
        }
    }
}

/// Runs until `stop` is cancelled, then drains: in-flight jobs get `grace` to finish and settle;
/// whatever is still running after that stays pending in Redis and is reclaimed by another worker.
pub async fn run(config: WorkerConfig, stop: CancellationToken) -> anyhow::Result<()> {
    let queues = Queues::new(config.stores.redis_url.expose(), &config.stores.prefix)?;
    let db = db::pool(config.stores.database_url.expose(), config.db_pool_size())?;
    let mut pipeline =
        handlers::Pipeline::from_env(db.clone(), queues.clone()).map_err(anyhow::Error::msg)?;
    pipeline.conversations.outbox = pipeline
        .conversations
        .outbox
        .clone()
        .cleaning_up_after(config.outbox_cleanup_after);
    let pipeline = pipeline.batching_stores(config.store_transactions, config.store_steps);
    let registry = registry::with_pipeline(db.clone(), pipeline.clone());
    let consumer_name = unique_consumer_name();
    info!(consumer = %consumer_name, queues = ?config.queues.iter().map(|q| q.as_str()).collect::<Vec<_>>(), "worker starting");

    let mut workers = tokio::task::JoinSet::new();
    for queue in &config.queues {
        let options = config.consumer_options(queue);
        let consumer = StreamConsumer::new(&queues, queue.clone(), &consumer_name);
        let worker = run_worker(
            consumer,
            options,
            FailedJobs::new(db.clone()),
            registry.clone(),
            stop.clone(),
        );
        let queue = queue.clone();
        workers.spawn(async move {
            if let Err(e) = worker.await {
                warn!(%queue, error = %e, "worker stopped with an error");
            }
        });
    }
    tokio::spawn(sample_queue_gauges(
        queues.clone(),
        config.queues.clone(),
        stop.clone(),
    ));

    stop.cancelled().await;
    info!(grace = ?config.grace, "draining in-flight jobs");
    let drained = tokio::time::timeout(config.grace, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("grace period over; unfinished jobs stay pending and will be reclaimed");
    }
    // The last jobs' outbox rows, so that no relay sends those events again.
    if let Err(error) = pipeline.conversations.outbox.flush_forgotten().await {
        warn!(error = %error, "outbox cleanup at shutdown failed; the relay will re-send those rows");
    }
    info!("worker stopped");
    Ok(())
}

/// Publishes depth, pending and delayed per queue as gauges, for dashboards and alerts.
async fn sample_queue_gauges(queues: Queues, names: Vec<QueueName>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        for name in &names {
            if let Ok(stats) = queues.stats(name).await {
                let queue = name.to_string();
                metrics::gauge!("switchyard_queue_length", "queue" => queue.clone())
                    .set(stats.length as f64);
                metrics::gauge!("switchyard_queue_pending", "queue" => queue.clone())
                    .set(stats.pending as f64);
                metrics::gauge!("switchyard_queue_delayed", "queue" => queue)
                    .set(stats.delayed as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use shared::config::Secret;

    use super::*;

    fn config(queues: &[&str], concurrency: usize, db_pool_size: Option<usize>) -> WorkerConfig {
        WorkerConfig {
            stores: StoreConfig {
                redis_url: Secret::new("redis://127.0.0.1:6379"),
                database_url: Secret::new("postgres://127.0.0.1/none"),
                prefix: "sy".into(),
            },
            queues: queues.iter().map(|q| QueueName::new(q).unwrap()).collect(),
            concurrency,
            tries: None,
            timeout: None,
            grace: Duration::from_secs(1),
            batch: 10,
            block: Duration::from_secs(1),
            db_pool_size,
            outbox_cleanup_after: shared::events::forget::GATHER_FOR,
            store_transactions: handlers::STORE_TRANSACTIONS,
            store_steps: handlers::STORE_STEPS_PER_TRANSACTION,
        }
    }

    #[test]
    fn the_pool_is_sized_apart_from_the_concurrency_but_never_above_the_jobs_at_once() {
        let one = ["whatsapp-messages"];
        assert_eq!(config(&one, 50, None).db_pool_size(), DEFAULT_DB_POOL_SIZE);
        assert_eq!(config(&one, 50, Some(40)).db_pool_size(), 40);
        assert_eq!(
            config(&one, 4, None).db_pool_size(),
            4,
            "no idle connections"
        );
        assert_eq!(config(&["a", "b"], 4, Some(40)).db_pool_size(), 8);
        assert_eq!(
            config(&one, 1, Some(1)).db_pool_size(),
            2,
            "a job and its cleanup"
        );
    }
}
