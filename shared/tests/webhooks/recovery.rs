//! Ten failed attempts in a row disable a subscription; its events are kept (including those
//! that arrive while it is disabled), and recovery re-sends them oldest first with their
//! original ids.

use serde_json::json;
use shared::webhooks::{Outcome, deliveries};

use crate::{
    subscriber::{Reply, Subscriber},
    support::Harness,
};

#[tokio::test(flavor = "multi_thread")]
async fn ten_failures_disable_and_recovery_resends_every_undelivered_event_oldest_first() {
    let h = Harness::new().await;
    let endpoint = Subscriber::start(Reply::status(500)).await;
    let healthy = Subscriber::start(Reply::status(200)).await;
    let sub = h
        .subscribe_with("t1", &endpoint.url, &["*"], json!({}), Some(vec![1]))
        .await
        .subscription;
    let bystander = h
        .subscribe("t1", &healthy.url, &["*"], json!({}))
        .await
        .subscription;

    // A delivered event before the streak: not re-sent by recovery.
    endpoint.script([Reply::status(200)]);
    let before = h.event("t1", "message.ready", json!({"n": 0}));
    h.webhooks.fan_out(&before).await.unwrap();
    h.drain().await;
    let mut ids = Vec::new();
    for n in 1..=5 {
        h.clock.advance(chrono::Duration::seconds(1));
        let event = h.event("t1", "message.ready", json!({"n": n}));
        ids.push(event["id"].as_str().unwrap().to_owned());
        h.webhooks.fan_out(&event).await.unwrap();
    }
    let first_round = h.drain().await;
    let retries = first_round
        .iter()
        .filter(|o| matches!(o, Outcome::RetryScheduled { .. }))
        .count();
    assert_eq!(retries, 5, "{first_round:?}");
    let mut outcomes = Vec::new();
    for (job, _) in h.take_delayed().await {
        outcomes.push(h.webhooks.deliver(&job).await.unwrap());
    }
    let disabled: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Disabled(_)))
        .collect();
    assert_eq!(
        disabled.len(),
        1,
        "the tenth failure disables: {outcomes:?}"
    );
    assert!(matches!(outcomes.last(), Some(Outcome::Disabled(d)) if d.consecutive_failures == 10));
    assert_eq!(
        h.disabled.lock().unwrap().len(),
        1,
        "subscription.disabled handed to the hook once"
    );
    assert_eq!(endpoint.received().len(), 11);

    for n in 6..=7 {
        h.clock.advance(chrono::Duration::seconds(1));
        let event = h.event("t1", "message.ready", json!({"n": n}));
        ids.push(event["id"].as_str().unwrap().to_owned());
        let fanned = h.webhooks.fan_out(&event).await.unwrap();
        assert_eq!(fanned.held, vec![sub.id.clone()], "recorded, not sent");
    }
    h.drain().await;
    assert_eq!(endpoint.received().len(), 11, "nothing sent while disabled");
    assert_eq!(
        healthy.received().len(),
        8,
        "the other subscription kept receiving"
    );
    let rows = deliveries::for_subscription(&h.db.pool, &sub.id)
        .await
        .unwrap();
    let count = |status: &str| rows.iter().filter(|r| r.status == status).count();
    // Four events spent their schedule; the one whose attempt disabled the subscription and
    // the two that arrived afterwards are held.
    assert_eq!(
        (count("delivered"), count("failed"), count("held")),
        (1, 4, 3)
    );

    endpoint.set_default(Reply::status(200));
    h.clock.advance(chrono::Duration::minutes(10));
    let recovered = h
        .webhooks
        .recover("t1", &sub.id, None)
        .await
        .unwrap()
        .unwrap();
    assert!(recovered.subscription.active);
    assert_eq!(recovered.subscription.consecutive_failures, 0);
    assert_eq!(
        recovered.event_ids, ids,
        "every undelivered event, oldest first"
    );
    assert!(
        h.webhooks
            .recover("t2", &sub.id, None)
            .await
            .unwrap()
            .is_none(),
        "tenant-scoped"
    );

    let outcomes = h.drain().await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Delivered { .. })),
        "{outcomes:?}"
    );
    let resent: Vec<String> = endpoint.received()[11..]
        .iter()
        .map(|r| r.header("webhook-id"))
        .collect();
    assert_eq!(resent, ids, "original webhook-ids, oldest first");
    let rows = deliveries::for_subscription(&h.db.pool, &sub.id)
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.status == "delivered"));
    assert!(h.subscription("t1", &bystander.id).await.active);
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_since_a_time_leaves_older_events_alone() {
    let h = Harness::new().await;
    let endpoint = Subscriber::start(Reply::status(410)).await;
    let sub = h
        .subscribe("t1", &endpoint.url, &["*"], json!({}))
        .await
        .subscription;
    h.webhooks
        .fan_out(&h.event("t1", "message.ready", json!({})))
        .await
        .unwrap();
    h.drain().await;
    h.clock.advance(chrono::Duration::hours(1));
    let old = h.event("t1", "message.ready", json!({}));
    h.webhooks.fan_out(&old).await.unwrap();
    h.clock.advance(chrono::Duration::hours(1));
    let since = h.now();
    let new = h.event("t1", "message.ready", json!({}));
    h.webhooks.fan_out(&new).await.unwrap();
    endpoint.set_default(Reply::status(200));
    let recovered = h
        .webhooks
        .recover("t1", &sub.id, Some(since))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        recovered.event_ids,
        vec![new["id"].as_str().unwrap().to_owned()]
    );
    h.drain().await;
    assert_eq!(
        endpoint.received().last().unwrap().header("webhook-id"),
        new["id"].as_str().unwrap()
    );
}
