//! `/api/failed-jobs` over HTTP with an operator key, against real Redis and Postgres: list with
//! filters and cursor, show, retry (dry run, ids, all matching), forget; tenant keys refused;
//! malformed and unknown ids answered with JSON errors.

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use shared::{
    conversation::api_keys::{self, Scope},
    queue::{
        Job, QueueName,
        failed::{FailedJob, FailedJobs},
    },
};

use crate::helpers::TestApp;

async fn key(app: &TestApp, scope: Scope) -> String {
    let mut conn = app.db.pool.get().await.unwrap();
    api_keys::create(&mut conn, &scope, "test")
        .await
        .expect("key")
        .token
}

async fn call(app: &TestApp, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    let body = if body.is_null() {
        String::new()
    } else {
        headers.push(("content-type", "application/json"));
        body.to_string()
    };
    let reply = app.request(method, path, &headers, body).await;
    (reply.status.as_u16(), reply.json())
}

/// Seeds `n` failures on `queue`, one minute apart (the newest `minutes_ago` old); their ids.
async fn seed(app: &TestApp, queue: &str, kind: &str, n: i64, minutes_ago: i64) -> Vec<String> {
    let failed = FailedJobs::new(app.db.pool.clone());
    let mut ids = Vec::new();
    for i in 0..n {
        let job = Job::new(QueueName::new(queue).unwrap(), kind, json!({ "n": i }))
            .with_max_attempts(2)
            .next_attempt("first try failed");
        let mut row = FailedJob::from_job(&job, "provider down\nstack trace");
        row.failed_at = Utc::now() - Duration::minutes(minutes_ago + i);
        failed.record(&row).await.unwrap();
        ids.push(row.id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_list_show_retry_and_forget_failed_jobs() {
    let app = TestApp::spawn().await;
    let op = key(&app, Scope::Operator).await;
    let deliveries = seed(&app, "deliveries", "delivery.send", 3, 1).await;
    let old = seed(&app, "webhooks", "webhook.deliver", 2, 180).await;

    // List: newest first, filters, paging by cursor.
    let (status, body) = call(&app, &op, "GET", "/api/failed-jobs", Value::Null).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 5);
    assert_eq!(body["failed_jobs"][0]["id"], deliveries[0].as_str());
    assert_eq!(body["next_cursor"], Value::Null);
    let (_, body) = call(
        &app,
        &op,
        "GET",
        "/api/failed-jobs?queue=webhooks",
        Value::Null,
    )
    .await;
    assert_eq!(body["total"], 2);
    assert_eq!(body["failed_jobs"][0]["kind"], "webhook.deliver");
    let since =
        (Utc::now() - Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let path = format!("/api/failed-jobs?since={since}&kind=delivery.send&limit=2");
    let (_, page1) = call(&app, &op, "GET", &path, Value::Null).await;
    assert_eq!(page1["total"], 3);
    assert_eq!(page1["failed_jobs"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, page2) = call(
        &app,
        &op,
        "GET",
        &format!("{path}&cursor={cursor}"),
        Value::Null,
    )
    .await;
    assert_eq!(page2["failed_jobs"].as_array().unwrap().len(), 1);
    assert_eq!(page2["failed_jobs"][0]["id"], deliveries[2].as_str());
    assert_eq!(page2["next_cursor"], Value::Null);

    // Show.
    let (status, body) = call(
        &app,
        &op,
        "GET",
        &format!("/api/failed-jobs/{}", old[0]),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["failed_job"]["queue"], "webhooks");
    assert_eq!(body["failed_job"]["error"], "provider down\nstack trace");

    // Retry all matching, dry run: nothing changes.
    let (status, body) = call(
        &app,
        &op,
        "POST",
        "/api/failed-jobs/retry",
        json!({ "all": true, "queue": "deliveries", "dry_run": true }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retry"]["dry_run"], true);
    assert_eq!(body["retry"]["retried"], 3);
    assert!(app.jobs("deliveries").await.is_empty());
    assert_eq!(
        FailedJobs::new(app.db.pool.clone())
            .count(None)
            .await
            .unwrap(),
        5
    );

    // Retry all matching: back on the stream, attempts reset, rows gone.
    let (status, body) = call(
        &app,
        &op,
        "POST",
        "/api/failed-jobs/retry",
        json!({ "all": true, "queue": "deliveries" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retry"]["retried"], 3);
    assert_eq!(body["retry"]["by_queue"]["deliveries"], 3);
    let jobs = app.jobs("deliveries").await;
    assert_eq!(jobs.len(), 3);
    let mut retried: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    retried.sort();
    let mut want = deliveries.clone();
    want.sort();
    assert_eq!(retried, want);

    // Retry by id, one unknown among them.
    let unknown = "01JD7ZQ4X8T5V9M2N6B3C1K0RA";
    let (status, body) = call(
        &app,
        &op,
        "POST",
        "/api/failed-jobs/retry",
        json!({ "ids": [old[0], unknown] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retry"]["retried"], 1);
    assert_eq!(body["retry"]["not_found"], json!([unknown]));
    assert_eq!(app.jobs("webhooks").await.len(), 1);

    // Forget: by DELETE, then again (404), and by POST with ids.
    let path = format!("/api/failed-jobs/{}", old[1]);
    let (status, body) = call(&app, &op, "DELETE", &path, Value::Null).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["forget"]["forgotten"], json!([old[1]]));
    let (status, body) = call(&app, &op, "DELETE", &path, Value::Null).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "not_found");
    let fresh = seed(&app, "email", "email.inbound", 1, 5).await;
    let (status, body) = call(
        &app,
        &op,
        "POST",
        "/api/failed-jobs/forget",
        json!({ "ids": [fresh[0], unknown] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["forget"]["not_found"], json!([unknown]));
    assert_eq!(
        FailedJobs::new(app.db.pool.clone())
            .count(None)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_keys_and_bad_ids_are_refused_with_json_errors() {
    let app = TestApp::spawn().await;
    let op = key(&app, Scope::Operator).await;
    let tenant = key(
        &app,
        Scope::Tenant {
            tenant_id: app.tenant_id.clone(),
        },
    )
    .await;
    let ids = seed(&app, "deliveries", "delivery.send", 1, 1).await;

    for (method, path, body) in [
        ("GET", "/api/failed-jobs".to_owned(), Value::Null),
        ("GET", format!("/api/failed-jobs/{}", ids[0]), Value::Null),
        (
            "POST",
            "/api/failed-jobs/retry".to_owned(),
            json!({ "all": true }),
        ),
        (
            "POST",
            "/api/failed-jobs/forget".to_owned(),
            json!({ "ids": [ids[0]] }),
        ),
    ] {
        let (status, body) = call(&app, &tenant, method, &path, body).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["code"], "forbidden");
    }
    let (status, _) = call(&app, "sy_not_a_key", "GET", "/api/failed-jobs", Value::Null).await;
    assert_eq!(status, 401);
    assert!(
        app.jobs("deliveries").await.is_empty(),
        "a refused retry enqueued"
    );

    let (status, body) = call(&app, &op, "GET", "/api/failed-jobs/not-an-id", Value::Null).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_input")),
        "{body}"
    );
    assert_eq!(body["field"], "id");
    let (status, body) = call(
        &app,
        &op,
        "GET",
        "/api/failed-jobs/01JD7ZQ4X8T5V9M2N6B3C1K0RA",
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = call(
        &app,
        &op,
        "POST",
        "/api/failed-jobs/retry",
        json!({ "ids": ["x"] }),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("ids")),
        "{body}"
    );
    let (status, body) = call(&app, &op, "POST", "/api/failed-jobs/retry", json!({})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        &app,
        &op,
        "POST",
        "/api/failed-jobs/retry",
        json!({ "ids": ["01JD7ZQ4X8T5V9M2N6B3C1K0RA"] }),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = call(
        &app,
        &op,
        "GET",
        "/api/failed-jobs?since=yesterday",
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("since")),
        "{body}"
    );
    let (status, body) = call(
        &app,
        &op,
        "GET",
        "/api/failed-jobs?queue=Bad%20Queue",
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("queue")),
        "{body}"
    );
    let (status, body) = call(&app, &op, "GET", "/api/failed-jobs?limit=0", Value::Null).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("limit")),
        "{body}"
    );
    let (status, _) = call(&app, &op, "PUT", "/api/failed-jobs", Value::Null).await;
    assert_eq!(status, 405);
    // Nothing was touched.
    assert_eq!(
        FailedJobs::new(app.db.pool.clone())
            .count(None)
            .await
            .unwrap(),
        1
    );
}
