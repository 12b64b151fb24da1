//! `/widget/{inbox}/messages`: the web widget's messages, bearer token, CORS and validation.

use serde_json::{Value, json};
use shared::inboxes::InboxKind;

use crate::helpers::*;

const TOKEN: &str = "wdg_public_token";

async fn app_with_widget() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let inbox = app
        .inbox(InboxKind::Widget, |i| i.widget_token = Some(TOKEN.into()))
        .await;
    (app, inbox)
}

async fn post(app: &TestApp, inbox: &str, body: &Value) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
        ("origin", "https://shop.example"),
    ];
    app.post(
        &format!("/widget/{inbox}/messages"),
        &headers,
        body.to_string(),
    )
    .await
}

fn message(client_id: &str, text: &str) -> Value {
    json!({"visitor_id": "v_42", "client_message_id": client_id, "text": text, "name": "Kim", "email": "kim@example.com"})
}

#[tokio::test(flavor = "multi_thread")]
async fn message_becomes_a_job_and_retries_are_deduplicated() {
    let (app, inbox) = app_with_widget().await;
    let reply = post(
        &app,
        &inbox,
        &message("c-1", "Hallo, wo ist mein Paket? 📦"),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(reply.json()["accepted"], 1);
    assert_eq!(
        post(
            &app,
            &inbox,
            &message("c-1", "Hallo, wo ist mein Paket? 📦")
        )
        .await
        .json()["duplicates"],
        1
    );
    // Another visitor's identical client id is their own message.
    let mut other = message("c-1", "hi");
    other["visitor_id"] = json!("v_43");
    assert_eq!(post(&app, &inbox, &other).await.json()["accepted"], 1);
    let jobs = app.jobs("widget").await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].kind, "widget.message");
    assert_eq!(jobs[0].payload["provider_message_id"], "c-1");
    assert_eq!(
        jobs[0].payload["raw"]["text"],
        "Hallo, wo ist mein Paket? 📦"
    );
    assert_eq!(jobs[0].payload["context"]["visitor_id"], "v_42");
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_allows_cross_origin_posts() {
    let (app, inbox) = app_with_widget().await;
    let reply = app
        .request(
            "OPTIONS",
            &format!("/widget/{inbox}/messages"),
            &[("origin", "https://shop.example")],
            "",
        )
        .await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert!(
        reply
            .header("access-control-allow-headers")
            .is_some_and(|h| h.contains("authorization"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_checked() {
    let (app, inbox) = app_with_widget().await;
    let path = format!("/widget/{inbox}/messages");
    let body = message("c-1", "hi").to_string();
    let json = ("content-type", "application/json");
    let missing = app.post(&path, &[json], body.clone()).await;
    app.assert_refused(&missing, 401, "missing credentials")
        .await;
    let wrong = app
        .post(
            &path,
            &[json, ("authorization", "Bearer nope")],
            body.clone(),
        )
        .await;
    assert_eq!(
        wrong.header("access-control-allow-origin"),
        Some("*"),
        "errors are readable by the widget"
    );
    app.assert_refused(&wrong, 401, "invalid credentials").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn text_length_and_fields_are_validated() {
    let (app, inbox) = app_with_widget().await;
    let mut no_visitor = message("c", "hi");
    no_visitor
        .as_object_mut()
        .expect("object")
        .remove("visitor_id");
    let mut numeric_id = message("c", "hi");
    numeric_id["client_message_id"] = json!(12);
    let mut long_name = message("c", "hi");
    long_name["name"] = json!("n".repeat(300));
    let cases = [
        (
            message("c", ""),
            "text",
            "text must be 1 to 4096 characters",
        ),
        (
            message("c", "   "),
            "text",
            "text must be 1 to 4096 characters",
        ),
        (
            message("c", &"ü".repeat(4097)),
            "text",
            "text must be 1 to 4096 characters",
        ),
        (no_visitor, "visitor_id", "visitor_id is missing"),
        (
            numeric_id,
            "client_message_id",
            "client_message_id must be a string",
        ),
        (
            message(&"c".repeat(257), "hi"),
            "client_message_id",
            "client_message_id must be at most 256 bytes",
        ),
        (long_name, "name", "name must be at most 256 bytes"),
        (
            json!({"visitor_id": "v", "client_message_id": "c", "text": 5}),
            "text",
            "text must be a string",
        ),
    ];
    for (body, field, error) in cases {
        let reply = post(&app, &inbox, &body).await;
        assert_eq!(reply.json()["field"], field);
        app.assert_refused(&reply, 400, error).await;
    }
    // 4,096 characters of multi-byte text is within the limit.
    assert_eq!(
        post(&app, &inbox, &message("c-max", &"ü".repeat(4096)))
            .await
            .json()["accepted"],
        1
    );
}
