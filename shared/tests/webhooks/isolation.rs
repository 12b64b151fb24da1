//! No head-of-line blocking: with the real worker, an endpoint that hangs holds at most its
//! per-endpoint share of attempts, and another endpoint's delivery goes through meanwhile.

use std::time::Duration;

use serde_json::json;
use shared::{
    jobs::JobRegistry,
    queue::{
        QueueName, RetryPolicy,
        backend::{ConsumerOptions, run_worker},
        consume::StreamConsumer,
        failed::FailedJobs,
    },
    testkit::{TestDb, TestRedis},
    webhooks::{self, Webhooks},
};
use tokio_util::sync::CancellationToken;

use crate::{
    subscriber::{Reply, Subscriber},
    support::test_config,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_endpoint_does_not_delay_another() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut config = test_config();
    config.endpoint_concurrency = 2;
    config.timeout = Duration::from_secs(60);
    let hooks = Webhooks::new(db.pool.clone(), redis.queues.clone(), config).unwrap();
    let slow = Subscriber::start(Reply::hang()).await;
    let fast = Subscriber::start(Reply::status(200)).await;
    let subscribe = |url: String, types: Vec<String>| {
        let pool = db.pool.clone();
        async move {
            let new = webhooks::NewSubscription {
                url,
                event_types: types,
                ..Default::default()
            };
            webhooks::subscriptions::create(&pool, "t1", new)
                .await
                .unwrap()
        }
    };
    subscribe(slow.url.clone(), vec!["slow.event".into()]).await;
    subscribe(fast.url.clone(), vec!["fast.event".into()]).await;
    let event = |t: &str| {
        json!({
            "id": format!("evt_{}", ulid::Ulid::new()), "type": t, "tenant_id": "t1",
            "timestamp": chrono::Utc::now().to_rfc3339(), "data": {}
        })
    };
    for _ in 0..6 {
        hooks.fan_out(&event("slow.event")).await.unwrap();
    }
    let fast_event = event("fast.event");
    hooks.fan_out(&fast_event).await.unwrap();

    let mut registry = JobRegistry::new();
    webhooks::register(&mut registry, hooks.clone());
    let queue = QueueName::new("webhooks").unwrap();
    let mut options = ConsumerOptions::for_policy(RetryPolicy::for_queue("webhooks"));
    options.concurrency = 4;
    options.block = Duration::from_millis(100);
    options.maintenance_every = Duration::from_millis(100);
    let stop = CancellationToken::new();
    let worker = tokio::spawn(run_worker(
        StreamConsumer::new(&redis.queues, queue, "isolation-test"),
        options,
        FailedJobs::new(db.pool.clone()),
        registry,
        stop.clone(),
    ));

    let got = fast.wait_for(1).await;
    assert_eq!(
        got[0].header("webhook-id"),
        fast_event["id"].as_str().unwrap()
    );
    assert!(slow.in_flight() >= 1, "the slow endpoint is still hanging");
    assert!(
        slow.most_in_flight() <= 2,
        "per-endpoint limit: {}",
        slow.most_in_flight()
    );

    slow.release();
    slow.wait_for(6).await;
    assert!(
        slow.most_in_flight() <= 2,
        "per-endpoint limit: {}",
        slow.most_in_flight()
    );
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
}
