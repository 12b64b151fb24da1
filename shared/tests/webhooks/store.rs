//! The subscriptions store: tenant isolation, validation, secrets shown once.

use serde_json::json;
use shared::webhooks::{
    NewSubscription, SubscriptionUpdate, WebhookError, schedule, subscriptions,
};

use crate::support::Harness;

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_tenant_scoped() {
    let h = Harness::new().await;
    let created = h
        .subscribe("t1", "https://example.com/a", &["*"], json!({}))
        .await;
    let id = created.subscription.id.clone();
    assert!(created.secret.starts_with("whsec_"));
    let pool = &h.db.pool;

    assert!(subscriptions::get(pool, "t2", &id).await.unwrap().is_none());
    assert!(subscriptions::list(pool, "t2").await.unwrap().is_empty());
    let update = SubscriptionUpdate {
        url: Some("https://evil.example/".into()),
        ..Default::default()
    };
    assert!(
        subscriptions::update(pool, "t2", &id, update)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!subscriptions::delete(pool, "t2", &id).await.unwrap());
    assert_eq!(subscriptions::list(pool, "t1").await.unwrap().len(), 1);

    let update = SubscriptionUpdate {
        event_types: Some(vec!["message.ready".into()]),
        description: Some(Some("CRM sync".into())),
        retry_schedule_secs: Some(schedule::preset("long")),
        ..Default::default()
    };
    let updated = subscriptions::update(pool, "t1", &id, update)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.event_types, vec!["message.ready".to_owned()]);
    assert_eq!(
        updated.retry_schedule_secs.as_deref(),
        Some(&schedule::LONG_SCHEDULE_SECS[..])
    );
    assert_eq!(updated.url, "https://example.com/a");

    let shown = serde_json::to_value(&updated).unwrap();
    assert!(shown.get("secret").is_none() && shown.get("previous_secret").is_none());
    assert!(
        !format!("{updated:?}").contains(&created.secret),
        "Debug hides the secret"
    );

    assert!(subscriptions::delete(pool, "t1", &id).await.unwrap());
    assert!(subscriptions::get(pool, "t1", &id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_subscriptions_are_refused_with_a_reason() {
    let h = Harness::new().await;
    let base = NewSubscription {
        url: "https://example.com/hook".into(),
        event_types: vec!["*".into()],
        ..Default::default()
    };
    let cases = [
        NewSubscription {
            url: "ftp://example.com".into(),
            ..base.clone()
        },
        NewSubscription {
            url: "nope".into(),
            ..base.clone()
        },
        NewSubscription {
            event_types: vec![],
            ..base.clone()
        },
        NewSubscription {
            filters: Some(json!({"channel": {"in": "whatsapp"}})),
            ..base.clone()
        },
        NewSubscription {
            retry_schedule_secs: Some(vec![]),
            ..base.clone()
        },
        NewSubscription {
            retry_schedule_secs: Some(vec![0, 5]),
            ..base.clone()
        },
    ];
    for new in cases {
        let shown = format!("{new:?}");
        let err = subscriptions::create(&h.db.pool, "t1", new)
            .await
            .unwrap_err();
        assert!(matches!(err, WebhookError::Invalid(_)), "{shown}: {err}");
    }
    assert!(
        subscriptions::list(&h.db.pool, "t1")
            .await
            .unwrap()
            .is_empty()
    );
}
