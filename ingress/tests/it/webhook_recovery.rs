//! Recover and replay over HTTP against a live loopback subscriber: events published through
//! the API fail at the subscriber until it is switched; ten failures in a row disable the
//! subscription (retries run at their scheduled due times on the worker's manual clock, never
//! waited for); `POST …/recover` delivers every held event in order with its original id, and
//! `POST …/replay` with `since` redelivers what was logged from then on.

use serde_json::{Value, json};
use shared::webhooks::Outcome;

use crate::{
    helpers::TestApp,
    subscriber::{Reply, Subscriber},
    subscriptions::{call, key},
    verifier,
    webhook_worker::Worker,
};

async fn publish(app: &TestApp, token: &str, n: usize) -> Value {
    let (status, published) = call(
        app,
        token,
        "POST",
        "/api/events",
        json!({ "type": "order.created", "data": { "n": n } }),
    )
    .await;
    assert_eq!(status, 201, "{published}");
    published["event"].clone()
}

fn webhook_ids(received: &[crate::subscriber::Received]) -> Vec<String> {
    received.iter().map(|r| r.header("webhook-id")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_failures_disable_then_recover_and_replay_redeliver_over_http() {
    let app = TestApp::spawn().await;
    let a = key(&app, &app.tenant_id).await;
    let worker = Worker::new(&app);
    let (status, _) = call(
        &app,
        &a,
        "POST",
        "/api/events/types",
        json!({ "name": "order.created", "schema": { "type": "object" } }),
    )
    .await;
    assert_eq!(status, 201);
    let endpoint = Subscriber::start(Reply::status(500)).await;
    let (status, created) = call(
        &app,
        &a,
        "POST",
        "/api/events/subscriptions",
        json!({ "url": endpoint.url, "event_types": ["order.created"], "retry_schedule_secs": [1] }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let one = format!("/api/events/subscriptions/{id}");

    // Five events, two attempts each (the schedule is one retry after 1 s): ten failures.
    let mut events = Vec::new();
    for n in 0..5 {
        events.push(publish(&app, &a, n).await);
    }
    let first = worker.drain().await;
    assert_eq!(first.len(), 5, "{first:?}");
    assert!(
        first
            .iter()
            .all(|o| matches!(o, Outcome::RetryScheduled { .. })),
        "{first:?}"
    );
    let retries = worker.run_delayed().await;
    assert_eq!(retries.len(), 5, "{retries:?}");
    assert!(
        matches!(retries.last(), Some(Outcome::Disabled(d)) if d.consecutive_failures == 10),
        "the tenth failure disables: {retries:?}"
    );
    assert_eq!(endpoint.received().len(), 10);
    let (_, sub) = call(&app, &a, "GET", &one, Value::Null).await;
    assert_eq!(sub["active"], false, "{sub}");
    assert_eq!(sub["consecutive_failures"], 10);
    assert!(sub["disabled_at"].is_string());
    let (_, disabled) = call(
        &app,
        &a,
        "GET",
        "/api/events?type=subscription.disabled",
        Value::Null,
    )
    .await;
    let disabled = disabled["events"].as_array().unwrap().clone();
    assert_eq!(disabled.len(), 1, "subscription.disabled is logged");
    assert_eq!(disabled[0]["event"]["data"]["subscription_id"], id.as_str());

    // While disabled, new events are held, not sent; replay is refused until recovered.
    for n in 5..7 {
        events.push(publish(&app, &a, n).await);
    }
    let held = worker.drain().await;
    assert!(
        held.is_empty(),
        "nothing is attempted while disabled: {held:?}"
    );
    assert_eq!(endpoint.received().len(), 10);
    let (status, err) = call(
        &app,
        &a,
        "POST",
        &format!("{one}/replay"),
        json!({ "since": "2020-01-01T00:00:00Z" }),
    )
    .await;
    assert_eq!(status, 409, "{err}");

    // The endpoint is fixed; recover delivers all seven, oldest first, with their ids.
    endpoint.set_default(Reply::status(200));
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let (status, recovered) = call(&app, &a, "POST", &format!("{one}/recover"), Value::Null).await;
    assert_eq!(status, 202, "{recovered}");
    assert_eq!(recovered["subscription"]["active"], true);
    assert_eq!(recovered["event_ids"], json!(ids));
    let delivered = worker.drain().await;
    assert_eq!(delivered.len(), 7, "{delivered:?}");
    assert!(
        delivered
            .iter()
            .all(|o| matches!(o, Outcome::Delivered { .. })),
        "{delivered:?}"
    );
    let received = endpoint.received();
    assert_eq!(webhook_ids(&received[10..]), ids, "original ids, in order");
    for (request, event) in received[10..].iter().zip(&events) {
        verifier::verify_request(&secret, request).expect("signed");
        assert_eq!(
            &request.json(),
            event,
            "the logged envelope, byte for byte the same event"
        );
    }
    let (_, sub) = call(&app, &a, "GET", &one, Value::Null).await;
    assert_eq!(
        sub["consecutive_failures"], 0,
        "a success resets the streak"
    );

    // Replay since the fourth event redelivers the fourth to the seventh, in order.
    let since = events[3]["timestamp"].as_str().unwrap();
    let (status, replayed) = call(
        &app,
        &a,
        "POST",
        &format!("{one}/replay"),
        json!({ "since": since }),
    )
    .await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(replayed["event_ids"], json!(ids[3..]));
    let again = worker.drain().await;
    assert_eq!(again.len(), 4, "{again:?}");
    assert_eq!(webhook_ids(&endpoint.received()[17..]), ids[3..]);

    // Every attempt is in the webhook logs: 10 failed, 7 recovered, 4 replayed.
    let (_, logs) = call(
        &app,
        &a,
        "GET",
        &format!("/api/events/webhook-logs?subscription_id={id}"),
        Value::Null,
    )
    .await;
    let logs = logs["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 21);
    assert_eq!(logs.iter().filter(|l| l["status"] == 500).count(), 10);
}
