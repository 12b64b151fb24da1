//! Fan-out: exactly the matching subscriptions of the event's tenant get it; inactive ones hold
//! it; running fan-out twice does not send twice.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use shared::webhooks::{NewSubscription, Outcome, subscriptions};

use crate::{
    subscriber::{Reply, Subscriber},
    support::Harness,
};

fn set(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_and_wildcards_match_exactly_what_they_should() {
    let h = Harness::new().await;
    let endpoint = Subscriber::start(Reply::status(200)).await;
    let url = endpoint.url.as_str();
    let all = h
        .subscribe("t1", url, &["*"], json!({}))
        .await
        .subscription
        .id;
    let ready = h
        .subscribe("t1", url, &["message.ready"], json!({}))
        .await
        .subscription
        .id;
    let ready_chat = h
        .subscribe(
            "t1",
            url,
            &["message.ready"],
            json!({"channel": {"in": ["whatsapp", "email"]}}),
        )
        .await
        .subscription
        .id;
    let widget = h
        .subscribe(
            "t1",
            url,
            &["*"],
            json!({"channel": "widget", "inbox.kind": "widget"}),
        )
        .await
        .subscription
        .id;
    let closed = h
        .subscribe("t1", url, &["case.closed", "csat.responded"], json!({}))
        .await
        .subscription
        .id;
    let paused = subscriptions::create(
        &h.db.pool,
        "t1",
        NewSubscription {
            url: url.into(),
            event_types: vec!["message.ready".into()],
            active: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .subscription
    .id;
    let other_tenant = h
        .subscribe("t2", url, &["*"], json!({}))
        .await
        .subscription
        .id;

    let cases: Vec<(&str, Value, Vec<&String>)> = vec![
        (
            "message.ready",
            json!({"channel": "whatsapp"}),
            vec![&all, &ready, &ready_chat],
        ),
        (
            "message.ready",
            json!({"channel": "facebook"}),
            vec![&all, &ready],
        ),
        ("message.ready", json!({}), vec![&all, &ready]),
        (
            "message.ready",
            json!({"channel": "widget", "inbox": {"kind": "widget"}}),
            vec![&all, &ready, &widget],
        ),
        (
            "message.ready",
            json!({"channel": "widget"}),
            vec![&all, &ready],
        ),
        ("message.readyish", json!({"channel": "email"}), vec![&all]),
        (
            "case.closed",
            json!({"channel": "email"}),
            vec![&all, &closed],
        ),
        ("csat.responded", json!({}), vec![&all, &closed]),
    ];
    for (event_type, data, expected) in cases {
        let event = h.event("t1", event_type, data.clone());
        let fanned = h.webhooks.fan_out(&event).await.unwrap();
        let expected: BTreeSet<String> = expected.into_iter().cloned().collect();
        assert_eq!(set(&fanned.enqueued), expected, "{event_type} {data}");
        assert!(
            !fanned.enqueued.contains(&other_tenant),
            "never another tenant's"
        );
        let held_expected = event_type == "message.ready";
        assert_eq!(
            fanned.held == vec![paused.clone()],
            held_expected,
            "{event_type} {data}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fanning_out_the_same_event_twice_sends_it_once() {
    let h = Harness::new().await;
    let endpoint = Subscriber::start(Reply::status(200)).await;
    h.subscribe("t1", &endpoint.url, &["*"], json!({})).await;
    let event = h.event("t1", "message.ready", json!({}));
    h.webhooks.fan_out(&event).await.unwrap();
    h.webhooks.fan_out(&event).await.unwrap();
    let outcomes = h.drain().await;
    let delivered = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Delivered { .. }))
        .count();
    assert_eq!(delivered, 1, "{outcomes:?}");
    assert_eq!(endpoint.received().len(), 1);
    h.webhooks.fan_out(&event).await.unwrap();
    assert!(
        h.drain().await.is_empty(),
        "a delivered event is not enqueued again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_without_an_envelope_is_refused() {
    let h = Harness::new().await;
    let err = h.webhooks.fan_out(&json!({"type": "x"})).await.unwrap_err();
    assert!(
        matches!(err, shared::webhooks::WebhookError::Invalid(_)),
        "{err}"
    );
}
