//! `/webhooks/meta`: the handshake, Messenger and WhatsApp Cloud batches, echoes, redeliveries,
//! unknown pages, and every way a delivery can be refused.

use serde_json::{Value, json};
use shared::inboxes::InboxKind;

use crate::helpers::*;

const PAGE_ID: &str = "104857600000001";
const PHONE_ID: &str = "106540352242922";

async fn app_with_meta_inboxes() -> (TestApp, String, String) {
    let app = TestApp::spawn().await;
    let page = app
        .inbox(InboxKind::Messenger, |i| i.page_id = Some(PAGE_ID.into()))
        .await;
    let phone = app
        .inbox(InboxKind::WhatsappCloud, |i| {
            i.phone_number_id = Some(PHONE_ID.into())
        })
        .await;
    (app, page, phone)
}

async fn post_signed(app: &TestApp, body: &str) -> Reply {
    let signature = meta_signature(body.as_bytes());
    let headers = [
        ("content-type", "application/json"),
        ("x-hub-signature-256", signature.as_str()),
    ];
    app.post("/webhooks/meta", &headers, body.to_owned()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn handshake_echoes_the_challenge_only_for_our_token() {
    let app = TestApp::spawn().await;
    let ok = app.get(&format!("/webhooks/meta?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(&ok.body[..], b"1158201444");
    let wrong = app
        .get("/webhooks/meta?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")
        .await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.error().as_str()),
        (403, "verify token does not match")
    );
    let no_mode = app
        .get(&format!(
            "/webhooks/meta?hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"
        ))
        .await;
    assert_eq!(
        (no_mode.status.as_u16(), no_mode.json()["field"].as_str()),
        (400, Some("hub.mode"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn whatsapp_cloud_message_becomes_one_job_with_routing_facts() {
    let (app, _, inbox) = app_with_meta_inboxes().await;
    let body = fixture("meta-whatsapp-cloud-message.json");
    let signature = meta_signature(body.as_bytes());
    let headers = [
        ("content-type", "application/json; charset=utf-8"),
        ("x-hub-signature-256", signature.as_str()),
        ("x-correlation-id", "corr-meta-1"),
    ];
    let reply = app.post("/webhooks/meta", &headers, body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"accepted": 1, "duplicates": 0, "ignored": 0})
    );
    assert_eq!(reply.header("x-correlation-id"), Some("corr-meta-1"));
    let jobs = app.jobs("whatsapp-messages").await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let wamid = "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjBEM0Y1QUE5MEJFQTc4OEM0AA==";
    assert_eq!(job.kind, "whatsapp.message");
    assert_eq!(job.queue.as_str(), "whatsapp-messages");
    assert_eq!(job.tenant_id.as_deref(), Some(app.tenant_id.as_str()));
    assert_eq!(job.correlation_id, "corr-meta-1");
    assert_eq!(
        job.dedup_key.as_deref(),
        Some(format!("{inbox}:message:{wamid}").as_str())
    );
    let p = &job.payload;
    assert_eq!(p["v"], 1);
    assert_eq!(p["channel"], "whatsapp_cloud");
    assert_eq!(p["inbox_id"], inbox.as_str());
    assert_eq!(p["tenant_id"], app.tenant_id.as_str());
    assert_eq!(p["provider_message_id"], wamid);
    assert_eq!(
        p["raw"]["text"]["body"],
        "Olá! Preciso de ajuda com a minha fatura"
    );
    assert_eq!(p["context"]["contacts"][0]["profile"]["name"], "Ana Souza");
    assert_eq!(p["context"]["metadata"]["phone_number_id"], PHONE_ID);
    assert!(p["received_at"].as_str().is_some_and(|t| t.ends_with('Z')));
}

#[tokio::test(flavor = "multi_thread")]
async fn whatsapp_status_is_its_own_kind() {
    let (app, _, _) = app_with_meta_inboxes().await;
    let reply = post_signed(&app, &fixture("meta-whatsapp-cloud-status.json")).await;
    assert_eq!(reply.json()["accepted"], 1);
    let jobs = app.jobs("whatsapp-messages").await;
    assert_eq!(jobs[0].kind, "whatsapp.status");
    assert_eq!(jobs[0].payload["raw"]["status"], "delivered");
    assert_eq!(
        jobs[0].payload["provider_message_id"],
        "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjBBQ0Q1RTZGNzg5MDEyMzQ1AA=="
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn messenger_message_postback_and_delivery_go_to_facebook() {
    let (app, inbox, _) = app_with_meta_inboxes().await;
    for (name, kind) in [
        ("meta-messenger-message.json", "messenger.message"),
        ("meta-messenger-postback.json", "messenger.postback"),
        ("meta-messenger-delivery.json", "messenger.status"),
    ] {
        let reply = post_signed(&app, &fixture(name)).await;
        assert_eq!(reply.json()["accepted"], 1, "{name}");
        let jobs = app.jobs("facebook").await;
        let job = jobs.last().expect("a job");
        assert_eq!(job.kind, kind);
        assert_eq!(job.payload["inbox_id"], inbox.as_str());
        assert_eq!(job.payload["context"]["entry_id"], PAGE_ID);
        assert_eq!(job.payload["raw"]["sender"]["id"], "7012345678901234");
    }
    let jobs = app.jobs("facebook").await;
    assert_eq!(
        jobs[0].payload["provider_message_id"],
        "m_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    );
    assert_eq!(
        jobs[1].payload["raw"]["postback"]["payload"],
        "CONNECT_AGENT"
    );
    assert_eq!(
        jobs[2].payload["raw"]["delivery"]["watermark"],
        1763801199000_i64
    );
    assert_eq!(app.jobs("whatsapp-messages").await.len(), 0);
}

fn messenger_event(mid: &str, text: &str) -> Value {
    json!({
        "sender": {"id": "7012345678901234"},
        "recipient": {"id": PAGE_ID},
        "timestamp": 1763801100321_i64,
        "message": {"mid": mid, "text": text}
    })
}

/// Two entries with several messages each, an echo, and a read receipt.
fn messenger_batch() -> Value {
    let mut echo = messenger_event("m_echo", "our reply");
    echo["message"]["is_echo"] = json!(true);
    let read = json!({"sender": {"id": "7012345678901234"}, "recipient": {"id": PAGE_ID}, "read": {"watermark": 1763801200000_i64}});
    json!({
        "object": "page",
        "entry": [
            {"id": PAGE_ID, "time": 1, "messaging": [messenger_event("m_1", "one"), messenger_event("m_2", "two"), echo]},
            {"id": PAGE_ID, "time": 2, "messaging": [messenger_event("m_3", "three"), read]},
        ]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_give_one_job_per_message_in_order_and_drop_echoes() {
    let (app, _, _) = app_with_meta_inboxes().await;
    let reply = post_signed(&app, &messenger_batch().to_string()).await;
    assert_eq!(
        reply.json(),
        json!({"accepted": 4, "duplicates": 0, "ignored": 1})
    );
    let jobs = app.jobs("facebook").await;
    let mids: Vec<_> = jobs
        .iter()
        .map(|j| j.payload["provider_message_id"].clone())
        .collect();
    assert_eq!(
        mids,
        [json!("m_1"), json!("m_2"), json!("m_3"), Value::Null]
    );
    assert_eq!(jobs[3].kind, "messenger.status");
    let correlation: std::collections::HashSet<_> =
        jobs.iter().map(|j| j.correlation_id.clone()).collect();
    assert_eq!(correlation.len(), 1, "one request, one correlation id");
}

#[tokio::test(flavor = "multi_thread")]
async fn redeliveries_are_acknowledged_once() {
    let (app, _, _) = app_with_meta_inboxes().await;
    let body = messenger_batch().to_string();
    assert_eq!(post_signed(&app, &body).await.json()["accepted"], 4);
    let again = post_signed(&app, &body).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.json(),
        json!({"accepted": 0, "duplicates": 4, "ignored": 1})
    );
    // A partial overlap (Meta re-batches): only the new message is enqueued.
    let mut overlap = messenger_batch();
    overlap["entry"][1]["messaging"][0] = messenger_event("m_4", "four");
    assert_eq!(
        post_signed(&app, &overlap.to_string()).await.json()["accepted"],
        1
    );
    assert_eq!(app.jobs("facebook").await.len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn unicode_escaped_by_meta_is_verified_over_the_raw_bytes() {
    let (app, _, _) = app_with_meta_inboxes().await;
    // Meta sends non-ASCII as \u escapes and signs those exact bytes (emoji as surrogate pairs).
    let body = fixture("meta-whatsapp-cloud-message.json").replace(
        "Olá! Preciso de ajuda com a minha fatura",
        r"Ol\u00e1! Gr\u00fc\u00dfe \ud83d\ude00",
    );
    assert!(body.is_ascii());
    let reply = post_signed(&app, &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let jobs = app.jobs("whatsapp-messages").await;
    assert_eq!(jobs[0].payload["raw"]["text"]["body"], "Olá! Grüße 😀");
    // The same text re-serialised as UTF-8 does not match the signature of the escaped bytes.
    let signature = meta_signature(body.as_bytes());
    let utf8 = body.replace(r"Ol\u00e1", "Olá");
    let headers = [
        ("content-type", "application/json"),
        ("x-hub-signature-256", signature.as_str()),
    ];
    let reply = app.post("/webhooks/meta", &headers, utf8).await;
    assert_eq!(
        (reply.status.as_u16(), reply.error().as_str()),
        (401, "invalid signature")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_updates_we_do_not_take_get_200_and_no_job() {
    let (app, _, _) = app_with_meta_inboxes().await;
    let unknown_page = fixture("meta-messenger-message.json").replace(PAGE_ID, "999999999999999");
    let unknown_phone =
        fixture("meta-whatsapp-cloud-message.json").replace(PHONE_ID, "111111111111111");
    let instagram = json!({"object": "instagram", "entry": []}).to_string();
    let feed =
        json!({"object": "page", "entry": [{"id": PAGE_ID, "changes": [{"field": "feed"}]}]})
            .to_string();
    let wa_other = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "account_update", "value": {}}]}]}).to_string();
    let reaction = json!({"object": "page", "entry": [{"id": PAGE_ID, "messaging": [{"sender": {"id": "1"}, "recipient": {"id": PAGE_ID}, "reaction": {"mid": "m", "action": "react"}}]}]}).to_string();
    for body in [
        unknown_page,
        unknown_phone,
        instagram,
        feed,
        wa_other,
        reaction,
    ] {
        let reply = post_signed(&app, &body).await;
        assert_eq!(reply.status, 200, "{body}");
        assert_eq!(reply.json()["accepted"], 0);
        assert_eq!(reply.json()["ignored"], 1, "{body}");
    }
    assert_eq!(app.job_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signatures_are_401_and_enqueue_nothing() {
    let (app, _, _) = app_with_meta_inboxes().await;
    let body = fixture("meta-messenger-message.json");
    let json = ("content-type", "application/json");
    let missing = app.post("/webhooks/meta", &[json], body.clone()).await;
    app.assert_refused(
        &missing,
        401,
        "missing signature header X-Hub-Signature-256",
    )
    .await;
    let forged = format!(
        "sha256={}",
        hmac_sha256_hex("not-the-secret", &[body.as_bytes()])
    );
    let wrong = app
        .post(
            "/webhooks/meta",
            &[json, ("x-hub-signature-256", &forged)],
            body.clone(),
        )
        .await;
    app.assert_refused(&wrong, 401, "invalid signature").await;
    let sha1 = app
        .post(
            "/webhooks/meta",
            &[json, ("x-hub-signature-256", "sha1=abc")],
            body.clone(),
        )
        .await;
    app.assert_refused(&sha1, 401, "invalid signature").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_with_the_field_named() {
    let (app, _, _) = app_with_meta_inboxes().await;
    let long_mid = "m".repeat(257);
    let cases: Vec<(String, &str, &str)> = vec![
        ("{not json".into(), "body", "body is not valid JSON"),
        (json!([1]).to_string(), "body", "body must be an object"),
        (json!({"entry": []}).to_string(), "object", "object is missing"),
        (json!({"object": "page"}).to_string(), "entry", "entry is missing"),
        (json!({"object": "page", "entry": {}}).to_string(), "entry", "entry must be an array"),
        (
            json!({"object": "page", "entry": [{"id": PAGE_ID, "messaging": [{"sender": {"id": "1"}, "message": {"mid": 5}}]}]}).to_string(),
            "entry[0].messaging[0].message.mid",
            "entry[0].messaging[0].message.mid must be a string",
        ),
        (
            json!({"object": "page", "entry": [{"id": PAGE_ID, "messaging": [messenger_event(&long_mid, "x")]}]}).to_string(),
            "entry[0].messaging[0].message.mid",
            "entry[0].messaging[0].message.mid must be at most 256 bytes",
        ),
        (
            json!({"object": "page", "entry": [{"id": PAGE_ID, "messaging": [{"message": {"mid": "m"}}]}]}).to_string(),
            "entry[0].messaging[0].sender",
            "entry[0].messaging[0].sender is missing",
        ),
        (
            fixture("meta-whatsapp-cloud-message.json").replace("\"from\": \"5511987654321\",", "\"from\": 5511987654321,"),
            "entry[0].changes[0].value.messages[0].from",
            "entry[0].changes[0].value.messages[0].from must be a string",
        ),
    ];
    for (body, field, error) in cases {
        let reply = post_signed(&app, &body).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.json()["field"], field, "{body}");
        assert!(
            reply.error().starts_with(error),
            "{} vs {error}",
            reply.error()
        );
    }
    // A batch with one bad message enqueues none of its good ones.
    let mut batch = messenger_batch();
    batch["entry"][1]["messaging"][0]["message"]["mid"] = json!(null);
    let reply = post_signed(&app, &batch.to_string()).await;
    app.assert_refused(&reply, 400, "entry[1].messaging[0].message.mid is missing")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_content_type_and_oversized_bodies_are_refused() {
    let (app, _, _) = app_with_meta_inboxes().await;
    let body = fixture("meta-messenger-message.json");
    let signature = meta_signature(body.as_bytes());
    let form = app
        .post(
            "/webhooks/meta",
            &[
                ("content-type", "text/plain"),
                ("x-hub-signature-256", &signature),
            ],
            body,
        )
        .await;
    app.assert_refused(&form, 415, "content type must be application/json")
        .await;
    let big = format!(
        "{{\"object\":\"page\",\"entry\":[],\"pad\":\"{}\"}}",
        "x".repeat(3 * 1024 * 1024)
    );
    let signature = meta_signature(big.as_bytes());
    let reply = app
        .post(
            "/webhooks/meta",
            &[
                ("content-type", "application/json"),
                ("x-hub-signature-256", &signature),
            ],
            big,
        )
        .await;
    app.assert_refused(&reply, 413, "body larger than 3145728 bytes")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_meta_configuration_the_route_is_404() {
    let app = TestApp::spawn_with(None, |c| c.meta = Default::default()).await;
    let reply = app
        .post(
            "/webhooks/meta",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    app.assert_refused(
        &reply,
        404,
        "meta webhooks are not configured on this deployment",
    )
    .await;
}

/// Postgres stores no U+0000 in text or JSONB, so a job carrying one could be neither stored
/// nor recorded as failed: the request is refused, and none of its other messages is enqueued.
/// An escaped backslash followed by `u0000` is just text, and taken.
#[tokio::test(flavor = "multi_thread")]
async fn a_nul_character_anywhere_in_a_batch_is_refused_before_anything_is_enqueued() {
    let (app, _, _) = app_with_meta_inboxes().await;
    let mut batch = messenger_batch();
    batch["entry"][1]["messaging"][0]["message"]["text"] = json!("three\u{0}");
    let reply = post_signed(&app, &batch.to_string()).await;
    app.assert_refused(
        &reply,
        400,
        "body contains the character U+0000 (\\u0000), which cannot be stored",
    )
    .await;

    batch["entry"][1]["messaging"][0]["message"]["text"] = json!("three\\u0000");
    let reply = post_signed(&app, &batch.to_string()).await;
    assert_eq!(reply.json()["accepted"], 4, "{:?}", reply.body);
}
