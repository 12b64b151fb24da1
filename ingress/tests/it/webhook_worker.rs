//! The `webhooks` queue's worker, run by the test: a `Webhooks` on a manual clock that may reach
//! loopback (the ingress only enqueues; delivery is a worker's job), and helpers that run the
//! queued `webhook.fanout` and `webhook.deliver` jobs through the real code in stream order.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use shared::{
    queue::{
        Job, QueueName,
        consume::{Settled, StreamConsumer},
    },
    webhooks::{
        DELIVER_KIND, ManualClock, Outcome, WebhookConfig, Webhooks,
        fanout_job::{FANOUT_KIND, FanOutTask},
    },
};

use crate::helpers::TestApp;

pub struct Worker {
    pub webhooks: Webhooks,
    pub clock: Arc<ManualClock>,
    app_queues: shared::queue::Queues,
    redis_url: String,
}

fn queue() -> QueueName {
    QueueName::new("webhooks").unwrap()
}

impl Worker {
    pub fn new(app: &TestApp) -> Self {
        let config = WebhookConfig {
            allow_nets: "127.0.0.0/8".parse().unwrap(),
            timeout: Duration::from_secs(5),
            ..WebhookConfig::default()
        };
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let webhooks = Webhooks::new(app.db.pool.clone(), app.queues.clone(), config)
            .unwrap()
            .with_clock(clock.clone());
        Self {
            webhooks,
            clock,
            app_queues: app.queues.clone(),
            redis_url: app.redis_url.clone(),
        }
    }

    /// Runs one job; the outcome of a delivery, `None` for a fan-out.
    pub async fn run(&self, job: &Job) -> Option<Outcome> {
        match job.kind.as_str() {
            FANOUT_KIND => {
                let task: FanOutTask = serde_json::from_value(job.payload.clone()).unwrap();
                self.webhooks.fan_out_logged(&task).await.unwrap();
                None
            }
            DELIVER_KIND => Some(self.webhooks.deliver(job).await.unwrap()),
            other => panic!("unexpected job kind {other}"),
        }
    }

    /// Runs every job waiting in the stream (and those they enqueue), in stream order; returns
    /// the delivery outcomes.
    pub async fn drain(&self) -> Vec<Outcome> {
        let consumer = StreamConsumer::new(&self.app_queues, queue(), "test-worker");
        consumer.ensure_group().await.unwrap();
        let block = Duration::from_millis(50);
        let mut conn = consumer.reader_connection(block).await.unwrap();
        let mut outcomes = Vec::new();
        loop {
            let batch = consumer.read(&mut conn, 100, block).await.unwrap();
            if batch.is_empty() {
                return outcomes;
            }
            for delivery in batch {
                let job = delivery.body.unwrap();
                outcomes.extend(self.run(&job).await);
                consumer
                    .settle(&[delivery.entry_id], Settled::Processed)
                    .await
                    .unwrap();
            }
        }
    }

    /// Every job in the delayed set with its due time (ms), earliest first; removes them.
    pub async fn take_delayed(&self) -> Vec<(Job, i64)> {
        let key = self.app_queues.keys(&queue()).delayed;
        let client = redis::Client::open(self.redis_url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let entries: Vec<(String, i64)> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .unwrap();
        redis::cmd("DEL")
            .arg(&key)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        entries
            .into_iter()
            .map(|(raw, due)| (serde_json::from_str(&raw).unwrap(), due))
            .collect()
    }

    /// Runs the due retries with the clock moved to each one's due time (no real waiting).
    pub async fn run_delayed(&self) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for (job, due_ms) in self.take_delayed().await {
            self.clock
                .set(DateTime::from_timestamp_millis(due_ms).unwrap());
            outcomes.extend(self.run(&job).await);
        }
        outcomes
    }

    /// Jobs waiting in the `webhooks` stream (without running them).
    pub async fn queued(&self) -> usize {
        let key = self.app_queues.keys(&queue()).stream;
        let client = redis::Client::open(self.redis_url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("XLEN")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}
