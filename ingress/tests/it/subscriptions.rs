//! Webhook subscriptions and the events API over HTTP with tenant keys, against real Redis and
//! Postgres: CRUD, secret shown once, rotation, recover; bad input named by field; tenant
//! isolation; events with filters and cursor, timeline, stats, schemas; test-webhook refusing a
//! loopback URL without an allowance.

use serde_json::{Value, json};
use shared::{
    conversation::{
        Conversations,
        api_keys::{self, Scope},
    },
    events::{Broadcaster, NewEvent, Route, types},
    inboxes,
};

use crate::helpers::TestApp;

pub(crate) async fn key(app: &TestApp, tenant_id: &str) -> String {
    let mut conn = app.db.pool.get().await.unwrap();
    let scope = Scope::Tenant {
        tenant_id: tenant_id.to_owned(),
    };
    api_keys::create(&mut conn, &scope, "test")
        .await
        .expect("key")
        .token
}

pub(crate) async fn call(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    let body = if body.is_null() {
        String::new()
    } else {
        headers.push(("content-type", "application/json"));
        body.to_string()
    };
    let reply = app.request(method, path, &headers, body).await;
    let json = if reply.status.as_u16() == 204 {
        Value::Null
    } else {
        reply.json()
    };
    (reply.status.as_u16(), json)
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_crud_is_tenant_scoped_and_bad_input_is_named() {
    let app = TestApp::spawn().await;
    let a = key(&app, &app.tenant_id).await;
    let other = inboxes::create_tenant(&app.db.pool, "Other").await.unwrap();
    let b = key(&app, &other).await;
    let base = "/api/events/subscriptions";

    for (body, field) in [
        (json!({ "event_types": ["*"] }), "url"),
        (
            json!({ "url": "https://example.com/h", "event_types": 5 }),
            "event_types",
        ),
        (json!({ "url": "https://example.com/h" }), "event_types"),
        (
            json!({ "url": "https://example.com/h", "event_types": ["*"], "filters": [1] }),
            "filters",
        ),
        (
            json!({ "url": "https://example.com/h", "event_types": ["*"], "retry_schedule_secs": "weekly" }),
            "retry_schedule_secs",
        ),
    ] {
        let (status, err) = call(&app, &a, "POST", base, body.clone()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    let (status, err) = call(
        &app,
        &a,
        "POST",
        base,
        json!({ "url": "not a url", "event_types": ["*"] }),
    )
    .await;
    assert_eq!(status, 400, "{err}");

    let (status, created) = call(
        &app,
        &a,
        "POST",
        base,
        json!({ "url": "https://example.com/hook", "event_types": ["message.ready"],
                "filters": { "channel": "waha" }, "description": "crm", "retry_schedule_secs": [1, 5, 15] }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = created["id"].as_str().unwrap().to_owned();
    let one = format!("{base}/{id}");

    let (status, list) = call(&app, &a, "GET", base, Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1);
    assert!(
        list["subscriptions"][0].get("secret").is_none(),
        "secret shown once"
    );
    let (_, got) = call(&app, &a, "GET", &one, Value::Null).await;
    assert_eq!(got["url"], "https://example.com/hook");
    assert!(got.get("secret").is_none());

    // Tenant B neither sees nor touches A's subscription.
    let (_, list_b) = call(&app, &b, "GET", base, Value::Null).await;
    assert!(list_b["subscriptions"].as_array().unwrap().is_empty());
    for (method, path, body) in [
        ("GET", one.clone(), Value::Null),
        ("PATCH", one.clone(), json!({ "active": false })),
        ("DELETE", one.clone(), Value::Null),
        ("POST", format!("{one}/rotate-secret"), Value::Null),
        ("POST", format!("{one}/recover"), Value::Null),
        (
            "POST",
            format!("{one}/replay"),
            json!({ "since": "2026-01-01T00:00:00Z" }),
        ),
    ] {
        let (status, err) = call(&app, &b, method, &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {err}");
    }

    let (status, updated) = call(
        &app,
        &a,
        "PATCH",
        &one,
        json!({ "active": false, "event_types": ["*"] }),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["active"], false);
    assert_eq!(updated["event_types"], json!(["*"]));
    let (status, err) = call(&app, &a, "PATCH", &one, json!({ "active": "yes" })).await;
    assert_eq!((status, err["field"].clone()), (400, json!("active")));

    let (status, rotated) = call(
        &app,
        &a,
        "POST",
        &format!("{one}/rotate-secret"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(rotated["secret"].as_str().unwrap(), secret);

    let (status, err) = call(
        &app,
        &a,
        "POST",
        &format!("{one}/recover"),
        json!({ "since": "yesterday" }),
    )
    .await;
    assert_eq!((status, err["field"].clone()), (400, json!("since")));
    let (status, recovered) = call(&app, &a, "POST", &format!("{one}/recover"), Value::Null).await;
    assert_eq!(status, 202, "{recovered}");
    assert_eq!(recovered["subscription"]["active"], true);

    let (status, logs) = call(
        &app,
        &a,
        "GET",
        &format!("/api/events/webhook-logs?subscription_id={id}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{logs}");
    assert!(logs["logs"].as_array().unwrap().is_empty());

    let (status, _) = call(&app, &a, "DELETE", &one, Value::Null).await;
    assert_eq!(status, 200);
    let (status, _) = call(&app, &a, "GET", &one, Value::Null).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, &a, "PUT", base, Value::Null).await;
    assert_eq!(status, 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn test_webhook_refuses_loopback_without_an_allowance() {
    let app = TestApp::spawn().await;
    let a = key(&app, &app.tenant_id).await;
    let (status, err) = call(&app, &a, "POST", "/api/events/test-webhook", json!({})).await;
    assert_eq!((status, err["field"].clone()), (400, json!("url")));
    let (status, probe) = call(
        &app,
        &a,
        "POST",
        "/api/events/test-webhook",
        json!({ "url": "http://127.0.0.1:9/hook" }),
    )
    .await;
    assert_eq!(status, 200, "{probe}");
    assert_eq!(probe["ok"], false);
    assert!(probe["error"].is_string());
}

async fn emit(app: &TestApp, tenant: &str, aggregate: &str, n: usize) {
    let broadcaster = Broadcaster::new(app.queues.clone(), "test:");
    let c = Conversations::new(
        app.db.pool.clone(),
        app.queues.clone(),
        broadcaster,
        "switchyard.api",
    );
    for i in 0..n {
        let mut tx = c.begin(tenant, "test").await.unwrap();
        tx.emit(NewEvent {
            event_type: types::SUBSCRIPTION_DISABLED,
            aggregate_type: "subscription",
            aggregate_id: aggregate.to_owned(),
            correlation_id: "corr".into(),
            data: json!({ "n": i }),
            route: Route::default(),
        })
        .await
        .unwrap();
        let effects = tx.commit().await.unwrap();
        c.settle(effects).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_list_timeline_stats_and_schemas() {
    let app = TestApp::spawn().await;
    let a = key(&app, &app.tenant_id).await;
    let other = inboxes::create_tenant(&app.db.pool, "Other").await.unwrap();
    let b = key(&app, &other).await;
    emit(&app, &app.tenant_id, "sub_x", 3).await;
    emit(&app, &app.tenant_id, "sub_y", 1).await;
    emit(&app, &other, "sub_x", 1).await;

    let (status, page) = call(
        &app,
        &a,
        "GET",
        "/api/events?type=subscription.disabled&entity_id=sub_x&limit=2",
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let next = page["next_after"].as_i64().unwrap();
    let (_, rest) = call(
        &app,
        &a,
        "GET",
        &format!("/api/events?type=subscription.disabled&entity_id=sub_x&limit=2&after={next}"),
        Value::Null,
    )
    .await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    assert!(rest["next_after"].is_null());
    let (_, none) = call(
        &app,
        &a,
        "GET",
        "/api/events?type=message.ready",
        Value::Null,
    )
    .await;
    assert!(none["events"].as_array().unwrap().is_empty());
    let (_, future) = call(
        &app,
        &a,
        "GET",
        "/api/events?from=2999-01-01T00:00:00Z",
        Value::Null,
    )
    .await;
    assert!(future["events"].as_array().unwrap().is_empty());
    let (_, theirs) = call(&app, &b, "GET", "/api/events", Value::Null).await;
    assert_eq!(
        theirs["events"].as_array().unwrap().len(),
        1,
        "B sees only its own"
    );
    let (status, err) = call(&app, &a, "GET", "/api/events?from=monday", Value::Null).await;
    assert_eq!((status, err["field"].clone()), (400, json!("from")));

    let (status, timeline) = call(
        &app,
        &a,
        "GET",
        "/api/events/timeline?entity_type=subscription&entity_id=sub_x",
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{timeline}");
    let versions: Vec<i64> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["aggregate"]["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    let (status, err) = call(
        &app,
        &a,
        "GET",
        "/api/events/timeline?entity_type=subscription",
        Value::Null,
    )
    .await;
    assert_eq!((status, err["field"].clone()), (400, json!("entity_id")));

    let (status, stats) = call(&app, &a, "GET", "/api/events/stats", Value::Null).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["total"], 4);
    assert_eq!(stats["by_type"]["subscription.disabled"], 4);
    let hourly: i64 = stats["by_hour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["count"].as_i64().unwrap())
        .sum();
    assert_eq!(hourly, 4);

    let (status, schemas) = call(&app, &a, "GET", "/api/events/schemas", Value::Null).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = schemas["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"message.ready") && names.contains(&"subscription.disabled"));
    let (status, _) = call(&app, &a, "POST", "/api/events/stats", Value::Null).await;
    assert_eq!(status, 405);
}
