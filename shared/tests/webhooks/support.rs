//! The harness: a fresh database and Redis prefix, a `Webhooks` on a manual clock allowed to
//! reach loopback, and helpers that run queued jobs through the real handler in stream order.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::{
    queue::{
        Job, QueueName,
        consume::{Settled, StreamConsumer},
    },
    testkit::{TestDb, TestRedis, redis_url},
    webhooks::{
        Created, ManualClock, NewSubscription, Outcome, SubscriptionDisabled, WebhookConfig,
        Webhooks, subscriptions,
    },
};

pub struct Harness {
    pub db: TestDb,
    pub redis: TestRedis,
    pub webhooks: Webhooks,
    pub clock: Arc<ManualClock>,
    pub disabled: Arc<Mutex<Vec<SubscriptionDisabled>>>,
}

pub fn test_config() -> WebhookConfig {
    WebhookConfig {
        allow_nets: "127.0.0.0/8".parse().unwrap(),
        timeout: Duration::from_secs(5),
        defer_by: Duration::from_millis(200),
        ..WebhookConfig::default()
    }
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_config(test_config()).await
    }

    pub async fn with_config(config: WebhookConfig) -> Self {
        let db = TestDb::new().await;
        let redis = TestRedis::new();
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let disabled = Arc::new(Mutex::new(Vec::new()));
        let seen = disabled.clone();
        let webhooks = Webhooks::new(db.pool.clone(), redis.queues.clone(), config)
            .unwrap()
            .with_clock(clock.clone())
            .on_disabled(move |d| seen.lock().unwrap().push(d));
        Self {
            db,
            redis,
            webhooks,
            clock,
            disabled,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        shared::webhooks::Clock::now(self.clock.as_ref())
    }

    pub async fn subscribe(
        &self,
        tenant: &str,
        url: &str,
        types: &[&str],
        filters: Value,
    ) -> Created {
        self.subscribe_with(tenant, url, types, filters, None).await
    }

    pub async fn subscribe_with(
        &self,
        tenant: &str,
        url: &str,
        types: &[&str],
        filters: Value,
        schedule: Option<Vec<i32>>,
    ) -> Created {
        let new = NewSubscription {
            url: url.to_owned(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
            filters: Some(filters),
            retry_schedule_secs: schedule,
            ..Default::default()
        };
        subscriptions::create(&self.db.pool, tenant, new)
            .await
            .unwrap()
    }

    /// An envelope at the harness clock's time.
    pub fn event(&self, tenant: &str, event_type: &str, data: Value) -> Value {
        json!({
            "id": format!("evt_{}", ulid::Ulid::new()),
            "type": event_type,
            "version": 1,
            "source": "test",
            "timestamp": self.now().to_rfc3339(),
            "tenant_id": tenant,
            "correlation_id": "corr-1",
            "data": data,
        })
    }

    fn queue() -> QueueName {
        QueueName::new("webhooks").unwrap()
    }

    /// Runs every job waiting in the stream, in stream order, through the real handler.
    pub async fn drain(&self) -> Vec<Outcome> {
        let consumer = StreamConsumer::new(&self.redis.queues, Self::queue(), "test-consumer");
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
                outcomes.push(self.webhooks.deliver(&job).await.unwrap());
                consumer
                    .settle(&[delivery.entry_id], Settled::Processed)
                    .await
                    .unwrap();
            }
        }
    }

    /// Every job in the delayed set with its due time (ms), earliest first; removes them.
    pub async fn take_delayed(&self) -> Vec<(Job, i64)> {
        let key = self.redis.queues.keys(&Self::queue()).delayed;
        let client = redis::Client::open(redis_url()).unwrap();
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

    /// Runs the one job in the delayed set, with the clock moved to its due time.
    pub async fn run_next_delayed(&self) -> Outcome {
        let mut due = self.take_delayed().await;
        assert_eq!(due.len(), 1, "one retry scheduled: {due:?}");
        let (job, due_ms) = due.remove(0);
        self.clock
            .set(DateTime::from_timestamp_millis(due_ms).unwrap());
        self.webhooks.deliver(&job).await.unwrap()
    }

    pub async fn subscription(&self, tenant: &str, id: &str) -> shared::webhooks::Subscription {
        subscriptions::get(&self.db.pool, tenant, id)
            .await
            .unwrap()
            .unwrap()
    }
}

/// Asserts `due` lies within `nominal` ± 10 % of `from`.
pub fn assert_due(due: DateTime<Utc>, from: DateTime<Utc>, nominal_secs: f64) {
    let waited = (due - from).as_seconds_f64();
    assert!(
        waited >= nominal_secs * 0.9 - 0.001 && waited <= nominal_secs * 1.1 + 0.001,
        "due {waited:.3} s after the attempt ended, expected {nominal_secs} s ± 10 %"
    );
}
