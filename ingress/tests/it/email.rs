//! `/webhooks/email/{inbox}`: Mailgun (signed form) and Postmark (JSON + basic auth), deduplicated
//! on Message-ID, with stale and replayed Mailgun signatures refused.

use base64::Engine as _;
use serde_json::json;
use shared::inboxes::InboxKind;

use crate::helpers::*;

const MAILGUN_KEY: &str = "mailgun-signing-key";
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The Mailgun fixture signed with `timestamp` and `token`.
pub fn mailgun_body(timestamp: i64, token: &str) -> String {
    let signature = hmac_sha256_hex(
        MAILGUN_KEY,
        &[timestamp.to_string().as_bytes(), token.as_bytes()],
    );
    fixture("mailgun-inbound.form")
        .trim_end()
        .replace("timestamp=1763806500", &format!("timestamp={timestamp}"))
        .replace(
            "token=6a1f0c2b9e8d7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f",
            &format!("token={token}"),
        )
        .replace(
            "REPLACE_WITH_HMAC_SHA256_HEX_OF_TIMESTAMP_AND_TOKEN",
            &signature,
        )
}

pub async fn mailgun_inbox(app: &TestApp) -> String {
    app.inbox(InboxKind::Email, |i| {
        i.email_provider = Some("mailgun".into());
        i.mailgun_signing_key = Some(MAILGUN_KEY.into());
    })
    .await
}

pub async fn post_mailgun(app: &TestApp, inbox: &str, body: String) -> Reply {
    app.post(&format!("/webhooks/email/{inbox}"), &[FORM], body)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn mailgun_email_becomes_one_job() {
    let app = TestApp::spawn().await;
    let inbox = mailgun_inbox(&app).await;
    let reply = post_mailgun(&app, &inbox, mailgun_body(now(), "token-1")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["accepted"], 1);
    let jobs = app.jobs("email").await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.kind, "email.message");
    assert_eq!(
        job.dedup_key.as_deref(),
        Some(format!("{inbox}:message:20251122101500.1.ABC@mail.example.net").as_str())
    );
    let p = &job.payload;
    assert_eq!(p["channel"], "email");
    assert_eq!(p["context"]["provider"], "mailgun");
    assert_eq!(
        p["provider_message_id"],
        "<20251122101500.1.ABC@mail.example.net>"
    );
    assert_eq!(p["raw"]["subject"], "Where is my parcel?");
    assert_eq!(p["raw"]["from"], "Sam Rivera <sam@example.net>");
}

#[tokio::test(flavor = "multi_thread")]
async fn mailgun_tokens_are_accepted_once_and_message_ids_dedup() {
    let app = TestApp::spawn().await;
    let inbox = mailgun_inbox(&app).await;
    let body = mailgun_body(now(), "token-once");
    assert_eq!(
        post_mailgun(&app, &inbox, body.clone()).await.json()["accepted"],
        1
    );
    let replay = post_mailgun(&app, &inbox, body).await;
    assert_eq!(
        (replay.status.as_u16(), replay.error().as_str()),
        (406, "token already used")
    );
    // A fresh signature for the same email: acknowledged as a duplicate, not enqueued again.
    let redelivery = post_mailgun(&app, &inbox, mailgun_body(now(), "token-two")).await;
    assert_eq!(
        redelivery.json(),
        json!({"accepted": 0, "duplicates": 1, "ignored": 0})
    );
    assert_eq!(app.jobs("email").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn mailgun_bad_signatures_are_refused() {
    let app = TestApp::spawn().await;
    let inbox = mailgun_inbox(&app).await;
    let stale = post_mailgun(&app, &inbox, mailgun_body(now() - 301, "token-stale")).await;
    app.assert_refused(
        &stale,
        401,
        "signature timestamp outside the accepted window",
    )
    .await;
    let future = post_mailgun(&app, &inbox, mailgun_body(now() + 301, "token-future")).await;
    app.assert_refused(
        &future,
        401,
        "signature timestamp outside the accepted window",
    )
    .await;
    let tampered = mailgun_body(now(), "token-a").replace("token=token-a", "token=token-b");
    let forged = post_mailgun(&app, &inbox, tampered).await;
    app.assert_refused(&forged, 401, "invalid signature").await;
    let unsigned = fixture("mailgun-inbound.form")
        .split("&timestamp=")
        .next()
        .unwrap_or_default()
        .to_owned();
    let missing = post_mailgun(&app, &inbox, unsigned).await;
    app.assert_refused(&missing, 401, "missing signature header signature")
        .await;
    let as_json = app
        .post(
            &format!("/webhooks/email/{inbox}"),
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    app.assert_refused(
        &as_json,
        415,
        "content type must be application/x-www-form-urlencoded or multipart/form-data",
    )
    .await;
    let no_sender = mailgun_body(now(), "token-c").replace("sender=sam%40example.net&", "");
    let reply = post_mailgun(&app, &inbox, no_sender).await;
    app.assert_refused(&reply, 400, "sender is missing").await;
    let bad_headers =
        mailgun_body(now(), "token-d").replace("message-headers=%5B%5B", "message-headers=%5B");
    let reply = post_mailgun(&app, &inbox, bad_headers).await;
    app.assert_refused(
        &reply,
        400,
        "message-headers must be a JSON list of [name, value] pairs",
    )
    .await;
}

async fn postmark_inbox(app: &TestApp) -> String {
    app.inbox(InboxKind::Email, |i| {
        i.email_provider = Some("postmark".into());
        i.postmark_user = Some("postmark".into());
        i.postmark_password = Some("pm-password".into());
    })
    .await
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn postmark_email_with_basic_auth_becomes_one_job_once() {
    let app = TestApp::spawn().await;
    let inbox = postmark_inbox(&app).await;
    let path = format!("/webhooks/email/{inbox}");
    let auth = basic("postmark", "pm-password");
    let headers = [
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    let reply = app
        .post(&path, &headers, fixture("postmark-inbound.json"))
        .await;
    assert_eq!(
        reply.json(),
        json!({"accepted": 1, "duplicates": 0, "ignored": 0})
    );
    let again = app
        .post(&path, &headers, fixture("postmark-inbound.json"))
        .await;
    assert_eq!(again.json()["duplicates"], 1);
    let jobs = app.jobs("email").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].payload["provider_message_id"],
        "<CAF7x9Q2b1@mail.example.org>"
    );
    assert_eq!(jobs[0].payload["context"]["provider"], "postmark");
    assert_eq!(jobs[0].payload["raw"]["MailboxHash"], "c7f3a9");
}

#[tokio::test(flavor = "multi_thread")]
async fn postmark_without_the_right_credentials_is_401() {
    let app = TestApp::spawn().await;
    let inbox = postmark_inbox(&app).await;
    let path = format!("/webhooks/email/{inbox}");
    let json = ("content-type", "application/json");
    let missing = app
        .post(&path, &[json], fixture("postmark-inbound.json"))
        .await;
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Basic realm=\"switchyard\"")
    );
    app.assert_refused(&missing, 401, "missing credentials")
        .await;
    let wrong = basic("postmark", "guess");
    let reply = app
        .post(
            &path,
            &[json, ("authorization", &wrong)],
            fixture("postmark-inbound.json"),
        )
        .await;
    app.assert_refused(&reply, 401, "invalid credentials").await;
    let right = basic("postmark", "pm-password");
    let no_from = fixture_json("postmark-inbound.json").as_object().map(|o| {
        let mut o = o.clone();
        o.remove("From");
        serde_json::Value::Object(o)
    });
    let reply = app
        .post(
            &path,
            &[json, ("authorization", &right)],
            no_from.unwrap_or_default().to_string(),
        )
        .await;
    app.assert_refused(&reply, 400, "From is missing").await;
}

/// The Mailgun fixture as multipart/form-data with one attachment, as Mailgun sends emails
/// that have attachments.
fn mailgun_multipart(timestamp: i64, token: &str) -> (String, Vec<u8>) {
    let boundary = "----switchyard-test-boundary";
    let mut body = Vec::new();
    for (name, value) in url::form_urlencoded::parse(mailgun_body(timestamp, token).as_bytes()) {
        body.extend(
            format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend(format!("--{boundary}\r\ncontent-disposition: form-data; name=\"attachment-1\"; filename=\"receipt.pdf\"\r\ncontent-type: application/pdf\r\n\r\n").as_bytes());
    body.extend(b"%PDF-1.4 \x00\x01\x02 binary");
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread")]
async fn mailgun_multipart_with_attachments_becomes_one_job() {
    let app = TestApp::spawn().await;
    let inbox = mailgun_inbox(&app).await;
    let (content_type, body) = mailgun_multipart(now(), "token-multipart");
    let reply = app
        .post(
            &format!("/webhooks/email/{inbox}"),
            &[("content-type", &content_type)],
            body,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let jobs = app.jobs("email").await;
    assert_eq!(jobs.len(), 1);
    let raw = &jobs[0].payload["raw"];
    assert_eq!(raw["subject"], "Where is my parcel?");
    let attachment = &raw["attachments"][0];
    assert_eq!(attachment["filename"], "receipt.pdf");
    assert_eq!(attachment["content_type"], "application/pdf");
    let content = base64::engine::general_purpose::STANDARD
        .decode(attachment["content_base64"].as_str().unwrap_or_default());
    assert_eq!(
        content.ok().as_deref(),
        Some(&b"%PDF-1.4 \x00\x01\x02 binary"[..])
    );
    assert_eq!(
        jobs[0].payload["provider_message_id"],
        "<20251122101500.1.ABC@mail.example.net>"
    );
    let broken = app
        .post(
            &format!("/webhooks/email/{inbox}"),
            &[("content-type", "multipart/form-data; boundary=x")],
            "--x\r\nnope",
        )
        .await;
    assert_eq!(
        (broken.status.as_u16(), broken.json()["field"].as_str()),
        (400, Some("body"))
    );
}
