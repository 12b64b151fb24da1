//! One delivery end to end: signed as Standard Webhooks says, retried on the subscription's
//! schedule, logged attempt by attempt, disabled by 410, stretched by Retry-After.

use std::time::Duration;

use chrono::DateTime;
use serde_json::json;
use shared::webhooks::{Outcome, logs, subscriptions};

use crate::{
    subscriber::{Reply, Subscriber},
    support::{Harness, assert_due, test_config},
    verifier::{verify, verify_request},
};

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_verify_with_an_independent_standard_webhooks_verifier() {
    let h = Harness::new().await;
    let endpoint = Subscriber::start(Reply::status(200)).await;
    let created = h.subscribe("t1", &endpoint.url, &["*"], json!({})).await;
    let event = h.event("t1", "message.ready", json!({"text": "héllo"}));
    h.webhooks.fan_out(&event).await.unwrap();
    assert!(matches!(
        h.drain().await[..],
        [Outcome::Delivered {
            attempt: 1,
            status: 200
        }]
    ));

    let got = endpoint.received().remove(0);
    assert_eq!(got.header("webhook-id"), event["id"].as_str().unwrap());
    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(got.json(), event, "the body is the event envelope");
    verify_request(&created.secret, &got).expect("signature verifies");

    let (id, ts, sig) = (
        got.header("webhook-id"),
        got.header("webhook-timestamp"),
        got.header("webhook-signature"),
    );
    let now = chrono::Utc::now().timestamp();
    let mut altered = got.body.to_vec();
    altered[1] ^= 1;
    assert!(
        verify(&created.secret, &id, &ts, &sig, &altered, now).is_err(),
        "body altered"
    );
    assert!(
        verify(&created.secret, "evt_other", &ts, &sig, &got.body, now).is_err(),
        "id altered"
    );
    let later = (ts.parse::<i64>().unwrap() + 1).to_string();
    assert!(
        verify(&created.secret, &id, &later, &sig, &got.body, now).is_err(),
        "timestamp altered"
    );
    let other_secret = shared::webhooks::signing::generate_secret();
    assert!(
        verify(&other_secret, &id, &ts, &sig, &got.body, now).is_err(),
        "wrong secret"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn during_a_rotation_both_secrets_sign_and_afterwards_only_the_new_one() {
    let h = Harness::new().await;
    let endpoint = Subscriber::start(Reply::status(204)).await;
    let created = h.subscribe("t1", &endpoint.url, &["*"], json!({})).await;
    let sub = &created.subscription;
    let overlap = Duration::from_secs(3600);
    let new_secret = subscriptions::rotate_secret(&h.db.pool, "t1", &sub.id, overlap, h.now())
        .await
        .unwrap()
        .unwrap();
    assert!(
        subscriptions::rotate_secret(&h.db.pool, "t2", &sub.id, overlap, h.now())
            .await
            .unwrap()
            .is_none()
    );

    h.webhooks
        .fan_out(&h.event("t1", "case.closed", json!({})))
        .await
        .unwrap();
    h.drain().await;
    let during = endpoint.received().remove(0);
    assert_eq!(during.header("webhook-signature").split(' ').count(), 2);
    verify_request(&new_secret, &during).expect("new secret verifies");
    verify_request(&created.secret, &during).expect("old secret still verifies");

    h.clock.advance(chrono::Duration::hours(2));
    h.webhooks
        .fan_out(&h.event("t1", "case.closed", json!({})))
        .await
        .unwrap();
    h.drain().await;
    let after = endpoint.received().remove(1);
    assert_eq!(after.header("webhook-signature").split(' ').count(), 1);
    verify_request(&new_secret, &after).expect("new secret verifies");
    assert!(
        verify_request(&created.secret, &after).is_err(),
        "old secret expired"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_retry_at_the_schedules_due_times_then_success_resets_the_streak() {
    let mut config = test_config();
    config.timeout = Duration::from_millis(300);
    let h = Harness::with_config(config).await;
    let endpoint = Subscriber::start(Reply::status(200)).await;
    endpoint.script([Reply::status(500), Reply::hang(), Reply::status(302)]);
    let sub = h
        .subscribe_with("t1", &endpoint.url, &["*"], json!({}), Some(vec![1, 5, 15]))
        .await
        .subscription;
    let event = h.event("t1", "message.ready", json!({}));
    h.webhooks.fan_out(&event).await.unwrap();

    let start = h.now();
    let Outcome::RetryScheduled {
        attempt: 1,
        next_attempt: 2,
        due,
    } = h.drain().await.remove(0)
    else {
        panic!("500 schedules a retry");
    };
    assert_due(due, start, 1.0);
    let (job, due_ms) = h.take_delayed().await.remove(0);
    assert_eq!(
        due_ms,
        due.timestamp_millis(),
        "the delayed set holds the job at its due time"
    );

    h.clock
        .set(DateTime::from_timestamp_millis(due_ms).unwrap());
    let second_ended = h.now();
    let Outcome::RetryScheduled {
        attempt: 2, due, ..
    } = h.webhooks.deliver(&job).await.unwrap()
    else {
        panic!("a timeout schedules a retry");
    };
    assert_due(due, second_ended, 5.0);
    assert_eq!(h.subscription("t1", &sub.id).await.consecutive_failures, 2);

    let third = h.clock_of_next().await;
    let Outcome::RetryScheduled {
        attempt: 3, due, ..
    } = h.run_next_delayed().await
    else {
        panic!("a 3xx is a failure");
    };
    assert_due(due, third, 15.0);

    assert!(matches!(
        h.run_next_delayed().await,
        Outcome::Delivered {
            attempt: 4,
            status: 200
        }
    ));
    let after = h.subscription("t1", &sub.id).await;
    assert_eq!(
        (after.consecutive_failures, after.failure_streak_started_at),
        (0, None)
    );

    let ids: Vec<String> = endpoint
        .received()
        .iter()
        .map(|r| r.header("webhook-id"))
        .collect();
    assert_eq!(
        ids,
        vec![event["id"].as_str().unwrap().to_owned(); 4],
        "same webhook-id on every retry"
    );

    let query = logs::LogQuery {
        subscription_id: Some(sub.id.clone()),
        limit: 10,
        ..Default::default()
    };
    let mut log = logs::list(&h.db.pool, "t1", &query).await.unwrap();
    log.reverse();
    let statuses: Vec<Option<i32>> = log.iter().map(|l| l.status).collect();
    assert_eq!(statuses, [Some(500), None, Some(302), Some(200)]);
    assert_eq!(
        log.iter().map(|l| l.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(
        log[1].error.as_deref().unwrap().contains("timed out"),
        "{:?}",
        log[1].error
    );
    assert_eq!(log[3].response_excerpt.as_deref(), Some("status 200"));
    assert_eq!(log[0].request_headers["webhook-signature"], "[redacted]");
    assert!(log[0].request_headers["webhook-id"].is_string());
    assert!(
        logs::list(&h.db.pool, "t2", &query)
            .await
            .unwrap()
            .is_empty(),
        "logs are tenant-scoped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schedule_ends_and_the_event_stays_recoverable() {
    let h = Harness::new().await;
    let endpoint = Subscriber::start(Reply::status(500)).await;
    let sub = h
        .subscribe_with("t1", &endpoint.url, &["*"], json!({}), Some(vec![1]))
        .await
        .subscription;
    h.webhooks
        .fan_out(&h.event("t1", "message.ready", json!({})))
        .await
        .unwrap();
    assert!(matches!(
        h.drain().await[..],
        [Outcome::RetryScheduled { .. }]
    ));
    assert!(matches!(
        h.run_next_delayed().await,
        Outcome::Exhausted { attempt: 2 }
    ));
    assert!(h.take_delayed().await.is_empty());
    let rows = shared::webhooks::deliveries::for_subscription(&h.db.pool, &sub.id)
        .await
        .unwrap();
    assert_eq!((rows[0].status.as_str(), rows[0].attempts), ("failed", 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_disables_the_subscription_at_once() {
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
    let Outcome::Disabled(disabled) = h.drain().await.remove(0) else {
        panic!("410 disables");
    };
    assert_eq!(disabled.subscription_id, sub.id);
    assert!(disabled.reason.contains("410"));
    assert_eq!(h.disabled.lock().unwrap().clone(), vec![disabled]);
    let after = h.subscription("t1", &sub.id).await;
    assert!(!after.active && after.disabled_at.is_some());
    assert!(h.take_delayed().await.is_empty(), "no retry after 410");

    let later = h
        .webhooks
        .fan_out(&h.event("t1", "message.ready", json!({})))
        .await
        .unwrap();
    assert_eq!(
        (later.enqueued.len(), later.held.clone()),
        (0, vec![sub.id.clone()])
    );
    assert_eq!(endpoint.received().len(), 1, "held events are not sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_on_429_and_503_is_honoured_when_longer_capped_at_an_hour() {
    let h = Harness::new().await;
    let endpoint = Subscriber::start(Reply::status(200)).await;
    endpoint.script([
        Reply::status(429).header("retry-after", "120"),
        Reply::status(503).header("retry-after", "86400"),
        Reply::status(503).header("retry-after", "1"),
        Reply::status(500).header("retry-after", "600"),
    ]);
    let schedule = Some(vec![1, 1, 60, 60]);
    h.subscribe_with("t1", &endpoint.url, &["*"], json!({}), schedule)
        .await;
    h.webhooks
        .fan_out(&h.event("t1", "message.ready", json!({})))
        .await
        .unwrap();

    let ended = h.now();
    let Outcome::RetryScheduled { due, .. } = h.drain().await.remove(0) else {
        panic!()
    };
    assert_eq!(
        (due - ended).num_seconds(),
        120,
        "429 Retry-After: 120 beats a 1 s delay"
    );
    let ended = h.clock_of_next().await;
    let Outcome::RetryScheduled { due, .. } = h.run_next_delayed().await else {
        panic!()
    };
    assert_eq!(
        (due - ended).num_seconds(),
        3600,
        "a day is capped at an hour"
    );
    let ended = h.clock_of_next().await;
    let Outcome::RetryScheduled { due, .. } = h.run_next_delayed().await else {
        panic!()
    };
    assert_due(due, ended, 60.0);
    let ended = h.clock_of_next().await;
    let Outcome::RetryScheduled { due, .. } = h.run_next_delayed().await else {
        panic!()
    };
    assert_due(due, ended, 60.0);
}

impl Harness {
    /// The time the next delayed job is due (where `run_next_delayed` moves the clock).
    async fn clock_of_next(&self) -> chrono::DateTime<chrono::Utc> {
        let pending = self.take_delayed().await;
        assert_eq!(pending.len(), 1);
        let (job, due_ms) = pending[0].clone();
        self.redis.queues.enqueue_at(&job, due_ms).await.unwrap();
        DateTime::from_timestamp_millis(due_ms).unwrap()
    }
}

/// Retention: logs and settled delivery rows older than the retention go; younger ones stay.
#[tokio::test(flavor = "multi_thread")]
async fn expired_logs_and_settled_deliveries_are_purged_and_younger_ones_kept() {
    let h = Harness::new().await;
    let endpoint = Subscriber::start(Reply::status(200)).await;
    h.subscribe("t1", &endpoint.url, &["*"], json!({})).await;
    h.webhooks
        .fan_out(&h.event("t1", "message.ready", json!({})))
        .await
        .unwrap();
    assert!(matches!(h.drain().await[..], [Outcome::Delivered { .. }]));
    let retention = Duration::from_secs(14 * 86_400);
    let day = chrono::Duration::days(1);

    let kept = logs::purge_expired(&h.db.pool, retention, h.now() + day * 13)
        .await
        .unwrap();
    assert_eq!(kept, (0, 0), "younger than the retention");
    let purged = logs::purge_expired(&h.db.pool, retention, h.now() + day * 15)
        .await
        .unwrap();
    assert_eq!(purged, (1, 1), "the attempt's log and its delivered row");
}
