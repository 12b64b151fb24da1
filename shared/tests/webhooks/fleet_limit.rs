//! The per-endpoint limit holds across the fleet: two `Webhooks` (two worker processes)
//! sharing Redis never have more than the limit of attempts in flight to one endpoint between
//! them; the jobs over it are deferred, not run. A slot whose worker died is freed by its lease.

use std::time::Duration;

use serde_json::json;
use shared::{
    queue::{
        QueueName,
        consume::{Settled, StreamConsumer},
    },
    testkit::redis_url,
    webhooks::{Outcome, Webhooks},
};

use crate::{
    subscriber::{Reply, Subscriber},
    support::{Harness, test_config},
};

/// A generous bound that turns a hang (the limit not holding) into a failure.
const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_sharing_redis_hold_the_limit_between_them() {
    let mut config = test_config();
    config.endpoint_concurrency = 2;
    config.timeout = Duration::from_secs(60);
    let h = Harness::with_config(config.clone()).await;
    let other_process = Webhooks::new(h.db.pool.clone(), h.redis.queues.clone(), config).unwrap();
    let slow = Subscriber::start(Reply::hang()).await;
    let sub = h
        .subscribe("t1", &slow.url, &["*"], json!({}))
        .await
        .subscription;
    for _ in 0..6 {
        h.webhooks
            .fan_out(&h.event("t1", "message.ready", json!({})))
            .await
            .unwrap();
    }
    let consumer = StreamConsumer::new(
        &h.redis.queues,
        QueueName::new("webhooks").unwrap(),
        "test-consumer",
    );
    consumer.ensure_group().await.unwrap();
    let mut conn = consumer
        .reader_connection(Duration::from_millis(50))
        .await
        .unwrap();
    let batch = consumer
        .read(&mut conn, 100, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(batch.len(), 6);

    // Three jobs on each process, all at once.
    let mut attempts = tokio::task::JoinSet::new();
    for (n, delivery) in batch.iter().enumerate() {
        let hooks = if n % 2 == 0 {
            h.webhooks.clone()
        } else {
            other_process.clone()
        };
        let job = delivery.body.clone().unwrap();
        attempts.spawn(async move { hooks.deliver(&job).await.unwrap() });
    }
    // Two attempts hang at the endpoint; the other four are deferred. With a limit per
    // process, four would hang and these joins would never come back.
    let mut deferred = 0;
    for _ in 0..4 {
        let outcome = tokio::time::timeout(BOUND, attempts.join_next())
            .await
            .expect("the jobs over the limit are deferred, not run")
            .unwrap()
            .unwrap();
        assert!(matches!(outcome, Outcome::Deferred { .. }), "{outcome:?}");
        deferred += 1;
    }
    assert_eq!(deferred, 4);
    slow.wait_for(2).await;
    assert_eq!(slow.most_in_flight(), 2, "fleet-wide limit");
    assert_eq!(h.webhooks.limiter().in_flight(&sub.id).await.unwrap(), 2);

    slow.release();
    while let Some(done) = tokio::time::timeout(BOUND, attempts.join_next())
        .await
        .expect("released attempts finish")
    {
        assert!(matches!(done.unwrap(), Outcome::Delivered { .. }));
    }
    assert_eq!(
        h.webhooks.limiter().in_flight(&sub.id).await.unwrap(),
        0,
        "slots given back"
    );
    assert_eq!(slow.received().len(), 2);
    let ids: Vec<String> = batch.into_iter().map(|d| d.entry_id).collect();
    consumer.settle(&ids, Settled::Processed).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_workers_slot_frees_itself_when_its_lease_ends() {
    let mut config = test_config();
    config.endpoint_concurrency = 1;
    let h = Harness::with_config(config).await;
    let limiter = h.webhooks.limiter();
    let key = limiter.key("sub_x");
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();

    // A live lease (another worker mid-attempt) holds the only slot.
    let far = chrono::Utc::now().timestamp_millis() + 3_600_000;
    redis::cmd("ZADD")
        .arg(&key)
        .arg(far)
        .arg("live-worker")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert!(limiter.try_acquire("sub_x").await.unwrap().is_none());
    // The same slot with a lease that ran out (its worker died): it is taken over.
    redis::cmd("ZADD")
        .arg(&key)
        .arg(1)
        .arg("live-worker")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let slot = limiter.try_acquire("sub_x").await.unwrap();
    assert!(slot.is_some(), "an expired lease does not hold the slot");
    assert!(limiter.try_acquire("sub_x").await.unwrap().is_none());
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0, "the set expires with its last lease");
    limiter.release(slot.unwrap()).await;
    assert!(limiter.try_acquire("sub_x").await.unwrap().is_some());
}
