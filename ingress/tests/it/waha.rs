//! `/webhooks/waha/{inbox}`: WAHA messages and acks, HMAC-SHA512, echoes, sessions, bad input.

use serde_json::{Value, json};
use shared::inboxes::InboxKind;

use crate::helpers::*;

const KEY: &str = "waha-hmac-key";

async fn app_with_inbox(key: Option<&str>) -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let inbox = app
        .inbox(InboxKind::Waha, |i| {
            i.waha_session = Some("default".into());
            i.waha_hmac_key = key.map(str::to_owned);
        })
        .await;
    (app, inbox)
}

async fn post_signed(app: &TestApp, inbox: &str, body: &str) -> Reply {
    let signature = hmac_sha512_hex(KEY, body.as_bytes());
    let headers = [
        ("content-type", "application/json"),
        ("x-webhook-hmac", signature.as_str()),
        ("x-webhook-hmac-algorithm", "sha512"),
    ];
    app.post(
        &format!("/webhooks/waha/{inbox}"),
        &headers,
        body.to_owned(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn message_becomes_a_job_on_whatsapp_messages() {
    let (app, inbox) = app_with_inbox(Some(KEY)).await;
    let reply = post_signed(&app, &inbox, &fixture("waha-message.json")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"accepted": 1, "duplicates": 0, "ignored": 0})
    );
    let jobs = app.jobs("whatsapp-messages").await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.kind, "waha.message");
    assert_eq!(job.tenant_id.as_deref(), Some(app.tenant_id.as_str()));
    assert_eq!(job.payload["channel"], "waha");
    assert_eq!(
        job.payload["provider_message_id"],
        "false_4915212345678@c.us_3EB0C767D26A1D8B4E2F"
    );
    assert_eq!(
        job.payload["raw"],
        fixture_json("waha-message.json"),
        "the whole event travels"
    );
    let stored = &app.job_texts("whatsapp-messages").await[0];
    let body = fixture("waha-message.json");
    assert!(
        stored.contains(&format!("\"raw\":{}", body.trim())),
        "byte for byte, the provider's own formatting included: {stored}"
    );
    assert_eq!(job.payload["context"]["session"], "default");
}

#[tokio::test(flavor = "multi_thread")]
async fn ack_is_a_status_job_and_each_level_counts_once() {
    let (app, inbox) = app_with_inbox(Some(KEY)).await;
    let ack = fixture("waha-message-ack.json");
    assert_eq!(post_signed(&app, &inbox, &ack).await.json()["accepted"], 1);
    assert_eq!(
        post_signed(&app, &inbox, &ack).await.json()["duplicates"],
        1
    );
    let played = ack.replace("\"ack\": 3", "\"ack\": 4");
    assert_eq!(
        post_signed(&app, &inbox, &played).await.json()["accepted"],
        1
    );
    let jobs = app.jobs("whatsapp-messages").await;
    assert_eq!(
        jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>(),
        ["waha.ack", "waha.ack"]
    );
    assert_eq!(jobs[1].payload["raw"]["payload"]["ack"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn echoes_other_sessions_and_other_events_are_acknowledged_not_enqueued() {
    let (app, inbox) = app_with_inbox(Some(KEY)).await;
    let mut from_me = fixture_json("waha-message.json");
    from_me["payload"]["fromMe"] = json!(true);
    let mut any = fixture_json("waha-message.json");
    any["event"] = json!("message.any");
    let mut other_session = fixture_json("waha-message.json");
    other_session["session"] = json!("sales");
    let status =
        json!({"event": "session.status", "session": "default", "payload": {"status": "WORKING"}});
    for body in [from_me, any, other_session, status] {
        let reply = post_signed(&app, &inbox, &body.to_string()).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.json(),
            json!({"accepted": 0, "duplicates": 0, "ignored": 1}),
            "{body}"
        );
    }
    assert_eq!(app.job_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn redelivered_message_is_enqueued_once() {
    let (app, inbox) = app_with_inbox(Some(KEY)).await;
    let body = fixture("waha-message.json");
    let replies = futures_join(&app, &inbox, &body).await;
    let accepted: i64 = replies
        .iter()
        .map(|r| r["accepted"].as_i64().unwrap_or(0))
        .sum();
    let duplicates: i64 = replies
        .iter()
        .map(|r| r["duplicates"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(
        (accepted, duplicates),
        (1, 7),
        "concurrent redeliveries: exactly one job"
    );
    assert_eq!(app.jobs("whatsapp-messages").await.len(), 1);
}

/// Eight concurrent deliveries of the same body.
async fn futures_join(app: &TestApp, inbox: &str, body: &str) -> Vec<Value> {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (addr, path, body) = (app.addr, format!("/webhooks/waha/{inbox}"), body.to_owned());
        let signature = hmac_sha512_hex(KEY, body.as_bytes());
        tasks.push(tokio::spawn(async move {
            let request = hyper::Request::post(path)
                .header("host", "x")
                .header("content-type", "application/json")
                .header("x-webhook-hmac", signature)
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .expect("request");
            send(addr, request).await.json()
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    replies
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_are_required_when_the_inbox_has_a_key() {
    let (app, inbox) = app_with_inbox(Some(KEY)).await;
    let path = format!("/webhooks/waha/{inbox}");
    let body = fixture("waha-message.json");
    let json = ("content-type", "application/json");
    let missing = app.post(&path, &[json], body.clone()).await;
    app.assert_refused(&missing, 401, "missing signature header X-Webhook-Hmac")
        .await;
    let forged = hmac_sha512_hex("other-key", body.as_bytes());
    let wrong = app
        .post(&path, &[json, ("x-webhook-hmac", &forged)], body.clone())
        .await;
    app.assert_refused(&wrong, 401, "invalid signature").await;
    let sha256 = hmac_sha256_hex(KEY, &[body.as_bytes()]);
    let alg = app
        .post(
            &path,
            &[
                json,
                ("x-webhook-hmac", &sha256),
                ("x-webhook-hmac-algorithm", "sha256"),
            ],
            body.clone(),
        )
        .await;
    app.assert_refused(&alg, 401, "unsupported signature algorithm")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn inbox_without_a_key_accepts_unsigned_events() {
    let (app, inbox) = app_with_inbox(None).await;
    let reply = app
        .post(
            &format!("/webhooks/waha/{inbox}"),
            &[("content-type", "application/json")],
            fixture("waha-message.json"),
        )
        .await;
    assert_eq!(reply.json()["accepted"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_inboxes_are_404() {
    let (app, _) = app_with_inbox(Some(KEY)).await;
    let widget = app
        .inbox(InboxKind::Widget, |i| i.widget_token = Some("t".into()))
        .await;
    let disabled = app.inbox(InboxKind::Waha, |_| {}).await;
    shared::inboxes::disable_inbox(&app.db.pool, &disabled)
        .await
        .expect("disable");
    let body = fixture("waha-message.json");
    for inbox in [
        "inb_01NOSUCHINBOX0000000000000",
        "..%2F..",
        &"x".repeat(65),
        &widget,
        &disabled,
    ] {
        let reply = post_signed(&app, inbox, &body).await;
        app.assert_refused(&reply, 404, "unknown inbox").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_with_the_field_named() {
    let (app, inbox) = app_with_inbox(Some(KEY)).await;
    let mut no_id = fixture_json("waha-message.json");
    no_id["payload"]
        .as_object_mut()
        .expect("object")
        .remove("id");
    let mut long_id = fixture_json("waha-message.json");
    long_id["payload"]["id"] = json!("x".repeat(300));
    let mut from_me_text = fixture_json("waha-message.json");
    from_me_text["payload"]["fromMe"] = json!("no");
    let mut ack_text = fixture_json("waha-message-ack.json");
    ack_text["payload"]["ack"] = json!("READ");
    let cases = [
        (json!({"session": "default"}), "event", "event is missing"),
        (
            json!({"event": "message", "session": "default"}),
            "payload",
            "payload is missing",
        ),
        (no_id, "payload.id", "payload.id is missing"),
        (
            long_id,
            "payload.id",
            "payload.id must be at most 256 bytes",
        ),
        (
            from_me_text,
            "payload.fromMe",
            "payload.fromMe must be a boolean",
        ),
        (ack_text, "payload.ack", "payload.ack must be an integer"),
    ];
    for (body, field, error) in cases {
        let reply = post_signed(&app, &inbox, &body.to_string()).await;
        assert_eq!(reply.json()["field"], field);
        app.assert_refused(&reply, 400, error).await;
    }
    let not_json = post_signed(&app, &inbox, "{\"event\":").await;
    assert_eq!(
        (not_json.status.as_u16(), not_json.json()["field"].as_str()),
        (400, Some("body"))
    );
    let text = app
        .post(
            &format!("/webhooks/waha/{inbox}"),
            &[("content-type", "text/plain")],
            "hi",
        )
        .await;
    app.assert_refused(&text, 415, "content type must be application/json")
        .await;
}

/// WAHA's body is carried verbatim: a U+0000 escape in it is refused all the same.
#[tokio::test(flavor = "multi_thread")]
async fn a_nul_character_in_a_verbatim_body_is_refused() {
    let (app, inbox) = app_with_inbox(None).await;
    let body = fixture("waha-message.json").replace("\"body\": \"", "\"body\": \"\\u0000");
    assert!(body.contains("\\u0000"), "the fixture has a body to prefix");
    let reply = app
        .post(
            &format!("/webhooks/waha/{inbox}"),
            &[("content-type", "application/json")],
            body,
        )
        .await;
    app.assert_refused(
        &reply,
        400,
        "body contains the character U+0000 (\\u0000), which cannot be stored",
    )
    .await;
}
