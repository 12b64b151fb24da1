//! Provider status callbacks through the worker's real status handler, on the pipeline's tables:
//! WhatsApp Cloud statuses and WAHA acks in order, reversed, duplicated and with a late failure;
//! Messenger delivery and read watermarks covering every message accepted before them and
//! nothing after. Each real move is stored once, stamped in `message_deliveries` and announced
//! by exactly one catalog event; everything else changes nothing.

use serde_json::{Value, json};
use shared::{
    channels::{DeliveryStore, DeliveryTask},
    conversation::delivery_store::PipelineDeliveryStore,
    inboxes::{self, InboxKind, NewInbox},
    queue::{Job, QueueName},
    testkit::unique,
};

use crate::World;

/// One bot reply, accepted by its provider under `provider_id`.
struct Sent {
    message_id: String,
    provider_id: String,
}

/// A tenant inbox of `kind` in `w`'s tenant.
async fn inbox(w: &World, kind: InboxKind) -> String {
    let mut new = NewInbox::new(&w.tenant_id, kind, "Callbacks");
    new.page_id = (kind == InboxKind::Messenger).then(|| unique("page"));
    new.phone_number_id = (kind == InboxKind::WhatsappCloud).then(|| unique("pn"));
    inboxes::create_inbox(&w.db.pool, &new).await.unwrap()
}

/// The customer `customer` writes to `inbox`; the bot's reply is accepted by the provider
/// (recorded through the pipeline's delivery store, as the deliveries handler does).
async fn bot_reply_sent(w: &World, kind: InboxKind, inbox: &str, customer: &str) -> Sent {
    let id = unique("in");
    let (job_kind, channel, raw, context) = match kind {
        InboxKind::WhatsappCloud => (
            "whatsapp.message",
            "whatsapp_cloud",
            json!({"from": customer, "id": format!("wamid.{id}"), "type": "text",
                   "timestamp": "1763801000", "text": {"body": "hello"}}),
            json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": customer}]}),
        ),
        InboxKind::Messenger => (
            "messenger.message",
            "messenger",
            json!({"sender": {"id": customer}, "recipient": {"id": "page"},
                   "timestamp": 1763801000123u64, "message": {"mid": format!("m_{id}"), "text": "hello"}}),
            json!({}),
        ),
        InboxKind::Waha => {
            let job = crate::waha_job(&w.tenant_id, inbox, customer, &id, "hello");
            return accept(w, job, "true_OUT").await;
        }
        other => panic!("no inbound job for {other:?}"),
    };
    let payload = json!({
        "v": 1, "channel": channel, "inbox_id": inbox, "tenant_id": w.tenant_id,
        "provider_message_id": id, "received_at": "2026-11-23T10:00:00.000Z",
        "context": context, "raw": raw,
    });
    let job =
        Job::new(QueueName::new("facebook").unwrap(), job_kind, payload).with_tenant(&w.tenant_id);
    let prefix = if kind == InboxKind::Messenger {
        "m_OUT"
    } else {
        "wamid.OUT"
    };
    accept(w, job, prefix).await
}

async fn accept(w: &World, inbound: Job, prefix: &str) -> Sent {
    let before = w.deliveries().await.len();
    w.run(&inbound).await.unwrap();
    let deliveries = w.deliveries().await;
    assert_eq!(deliveries.len(), before + 1, "the bot answered");
    let task = DeliveryTask::from_payload(&deliveries[before].payload).unwrap();
    let provider_id = format!("{prefix}_{}", unique("p"));
    let store = PipelineDeliveryStore::new(w.conversations().clone());
    store.sent(&task, &provider_id).await.unwrap();
    Sent {
        message_id: task.message_id,
        provider_id,
    }
}

/// A status job as ingress enqueues it.
fn status_job(w: &World, inbox: &str, kind: &str, raw: Value) -> Job {
    let payload = json!({
        "v": 1, "channel": "any", "inbox_id": inbox, "tenant_id": w.tenant_id,
        "provider_message_id": null, "received_at": "2026-11-23T10:00:00Z", "context": {}, "raw": raw,
    });
    Job::new(QueueName::new("facebook").unwrap(), kind, payload).with_tenant(&w.tenant_id)
}

/// Runs one status job; it must succeed (acknowledged), whatever it changes.
async fn apply(w: &World, inbox: &str, kind: &str, raw: Value) {
    w.run(&status_job(w, inbox, kind, raw)).await.unwrap();
}

fn wa(sent: &Sent, status: &str) -> Value {
    let mut raw = json!({"id": sent.provider_id, "status": status,
                         "timestamp": "1763801310", "recipient_id": "4915"});
    if status == "failed" {
        raw["errors"] = json!([{"code": 131026, "title": "Message undeliverable",
                                "message": "Message undeliverable"}]);
    }
    raw
}

fn ack(sent: &Sent, level: i64) -> Value {
    json!({"event": "message.ack", "session": "default",
           "payload": {"id": sent.provider_id, "fromMe": true, "ack": level}})
}

async fn status(w: &World, sent: &Sent) -> String {
    for s in ["stored", "sent", "delivered", "read", "failed"] {
        let sql = format!(
            "SELECT 1 FROM messages WHERE id = '{}' AND status = '{s}'",
            sent.message_id
        );
        if w.count(&sql).await == 1 {
            return s.to_owned();
        }
    }
    panic!("message {} has no status", sent.message_id)
}

/// How many `event` were logged about the message.
async fn events(w: &World, sent: &Sent, event: &str) -> i64 {
    w.count(&format!(
        "SELECT 1 FROM event_logs WHERE type = '{event}' AND aggregate_id = '{}'",
        sent.message_id
    ))
    .await
}

/// Whether `message_deliveries.<column>` is set for the message.
async fn stamped(w: &World, sent: &Sent, column: &str) -> bool {
    w.count(&format!(
        "SELECT 1 FROM message_deliveries WHERE message_id = '{}' AND {column} IS NOT NULL",
        sent.message_id
    ))
    .await
        == 1
}

#[tokio::test(flavor = "multi_thread")]
async fn whatsapp_statuses_in_order_reversed_duplicated_and_a_late_failure_never_move_back() {
    let w = World::new().await;
    let inbox = inbox(&w, InboxKind::WhatsappCloud).await;
    let kind = InboxKind::WhatsappCloud;
    let in_order = bot_reply_sent(&w, kind, &inbox, "491001").await;
    let reversed = bot_reply_sent(&w, kind, &inbox, "491002").await;
    let duplicated = bot_reply_sent(&w, kind, &inbox, "491003").await;
    let failing = bot_reply_sent(&w, kind, &inbox, "491004").await;
    assert_eq!(
        status(&w, &in_order).await,
        "sent",
        "accepted, not delivered"
    );
    assert!(stamped(&w, &in_order, "sent_at").await);
    let run = |raw: Value| apply(&w, &inbox, "whatsapp.status", raw);

    for s in ["sent", "delivered", "read"] {
        run(wa(&in_order, s)).await;
    }
    for s in ["read", "delivered", "sent"] {
        run(wa(&reversed, s)).await;
    }
    for s in ["delivered", "delivered", "read", "read", "failed"] {
        run(wa(&duplicated, s)).await;
    }
    run(wa(&failing, "failed")).await;
    run(wa(&failing, "delivered")).await; // after failed: terminal
    run(json!({"id": "wamid.not-ours", "status": "read"})).await; // acknowledged

    for sent in [&in_order, &reversed, &duplicated] {
        assert_eq!(status(&w, sent).await, "read", "{}", sent.provider_id);
        assert_eq!(events(&w, sent, "message.read").await, 1);
        assert_eq!(events(&w, sent, "message.delivery_failed").await, 0);
        assert!(stamped(&w, sent, "read_at").await);
        assert!(!stamped(&w, sent, "failed_at").await);
    }
    assert_eq!(events(&w, &in_order, "message.delivered").await, 1);
    assert_eq!(events(&w, &duplicated, "message.delivered").await, 1);
    assert_eq!(
        events(&w, &reversed, "message.delivered").await,
        0,
        "delivered after read is stale"
    );
    assert!(!stamped(&w, &reversed, "delivered_at").await);

    assert_eq!(status(&w, &failing).await, "failed");
    assert_eq!(events(&w, &failing, "message.delivery_failed").await, 1);
    assert_eq!(events(&w, &failing, "message.delivered").await, 0);
    let failed = w
        .events()
        .await
        .into_iter()
        .find(|e| e.envelope.event_type == "message.delivery_failed")
        .unwrap();
    assert_eq!(
        failed.envelope.data["status"]["reason"],
        "Message undeliverable (code 131026)"
    );
    let kept = format!(
        "SELECT 1 FROM message_deliveries WHERE message_id = '{}' AND last_error = 'Message undeliverable (code 131026)'",
        failing.message_id
    );
    assert_eq!(w.count(&kept).await, 1, "the provider's reason is kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn waha_acks_in_order_reversed_duplicated_and_a_late_error_never_move_back() {
    let w = World::new().await;
    let inbox = w.inbox_id.clone();
    let in_order = bot_reply_sent(&w, InboxKind::Waha, &inbox, "4911@c.us").await;
    let reversed = bot_reply_sent(&w, InboxKind::Waha, &inbox, "4912@c.us").await;
    let late_error = bot_reply_sent(&w, InboxKind::Waha, &inbox, "4913@c.us").await;
    let errored = bot_reply_sent(&w, InboxKind::Waha, &inbox, "4914@c.us").await;
    let subscriber = w.subscribe(&w.tenant_id).await;
    let run = |raw: Value| apply(&w, &inbox, "waha.ack", raw);

    for level in [0, 1, 2, 3, 4] {
        run(ack(&in_order, level)).await;
    }
    for level in [4, 3, 3, 2, 1, 0] {
        run(ack(&reversed, level)).await;
    }
    for level in [2, 2, 3, -1] {
        run(ack(&late_error, level)).await;
    }
    for level in [1, -1, 2, 3, -1] {
        run(ack(&errored, level)).await;
    }

    for sent in [&in_order, &reversed, &late_error] {
        assert_eq!(status(&w, sent).await, "read", "{}", sent.provider_id);
        assert_eq!(events(&w, sent, "message.read").await, 1);
        assert_eq!(events(&w, sent, "message.delivery_failed").await, 0);
    }
    assert_eq!(events(&w, &in_order, "message.delivered").await, 1);
    assert_eq!(events(&w, &reversed, "message.delivered").await, 0);
    assert_eq!(events(&w, &late_error, "message.delivered").await, 1);
    assert_eq!(status(&w, &errored).await, "failed");
    assert_eq!(events(&w, &errored, "message.delivery_failed").await, 1);
    assert_eq!(events(&w, &errored, "message.read").await, 0);

    // Broadcast where the message went: the tenant's messages channel, the session's, and the
    // agents' of the session's path (our row of the matrix, shared::events::channels).
    let seen = subscriber.settle().await;
    let reads: Vec<&str> = seen
        .iter()
        .filter(|(_, p)| p["event"] == "message.read")
        .map(|(c, _)| c.as_str())
        .collect();
    let read_events = w
        .count("SELECT 1 FROM event_logs WHERE type = 'message.read'")
        .await as usize;
    assert_eq!(reads.len(), read_events * 3, "{seen:?}");
    assert!(reads.iter().any(|c| c.ends_with(".messages")), "{reads:?}");
    assert!(reads.iter().any(|c| c.contains(".session.")), "{reads:?}");
    assert!(reads.iter().any(|c| c.contains(".agent.")), "{reads:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn messenger_watermarks_cover_every_message_accepted_before_them_and_nothing_after() {
    let w = World::new().await;
    let inbox = inbox(&w, InboxKind::Messenger).await;
    let kind = InboxKind::Messenger;
    let psid = "7012345678901234";
    let first = bot_reply_sent(&w, kind, &inbox, psid).await;
    let second = bot_reply_sent(&w, kind, &inbox, psid).await;
    let after = bot_reply_sent(&w, kind, &inbox, psid).await;
    let other_customer = bot_reply_sent(&w, kind, &inbox, "7099").await;
    // The provider accepted them at these times (ms since epoch); the watermarks fall between.
    let accepted = [
        (&first, 1_763_801_000_000i64),
        (&second, 1_763_801_001_000),
        (&after, 1_763_801_005_000),
        (&other_customer, 1_763_801_000_500),
    ];
    for (sent, at) in accepted {
        let sql = format!(
            "UPDATE message_deliveries SET sent_at = to_timestamp({at}::double precision / 1000) WHERE message_id = '{}'",
            sent.message_id
        );
        let mut conn = w.db.pool.get().await.unwrap();
        diesel_async::RunQueryDsl::execute(diesel::sql_query(sql), &mut conn)
            .await
            .unwrap();
    }
    let messaging = |body: Value| {
        let mut event = json!({"sender": {"id": psid}, "recipient": {"id": "page"}});
        event
            .as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        status_job(&w, &inbox, "messenger.status", event)
    };
    let delivery = messaging(json!({"delivery": {"watermark": 1_763_801_001_000i64}}));
    let read = messaging(json!({"read": {"watermark": 1_763_801_001_000i64}}));

    w.run(&delivery).await.unwrap();
    w.run(&delivery).await.unwrap(); // duplicate
    for sent in [&first, &second] {
        assert_eq!(status(&w, sent).await, "delivered");
        assert_eq!(events(&w, sent, "message.delivered").await, 1);
    }
    assert_eq!(
        status(&w, &after).await,
        "sent",
        "accepted after the watermark"
    );
    assert_eq!(status(&w, &other_customer).await, "sent", "another contact");

    w.run(&read).await.unwrap();
    // A late delivery watermark after the read: stale.
    w.run(&messaging(
        json!({"delivery": {"watermark": 1_763_801_000_000i64}}),
    ))
    .await
    .unwrap();
    for sent in [&first, &second] {
        assert_eq!(status(&w, sent).await, "read");
        assert_eq!(events(&w, sent, "message.read").await, 1);
        assert_eq!(events(&w, sent, "message.delivered").await, 1);
        assert!(stamped(&w, sent, "delivered_at").await && stamped(&w, sent, "read_at").await);
    }
    assert_eq!(status(&w, &after).await, "sent");
    assert_eq!(events(&w, &after, "message.read").await, 0);

    // A delivery naming the later message's mid covers it whatever the watermark.
    w.run(&messaging(
        json!({"delivery": {"mids": [after.provider_id], "watermark": 1_763_801_000_000i64}}),
    ))
    .await
    .unwrap();
    assert_eq!(status(&w, &after).await, "delivered");
    assert_eq!(events(&w, &after, "message.delivered").await, 1);
    assert_eq!(status(&w, &other_customer).await, "sent");

    // A watermark for a contact we never wrote to: acknowledged, nothing moves.
    let mut stranger = messaging(json!({"read": {"watermark": 1_763_801_009_000i64}}));
    stranger.payload["raw"]["sender"]["id"] = json!("not-a-contact");
    w.run(&stranger).await.unwrap();
    assert_eq!(
        w.count("SELECT 1 FROM event_logs WHERE type IN ('message.delivered', 'message.read')")
            .await,
        5
    );
    // Malformed: permanent, saying what is missing.
    let broken = status_job(
        &w,
        &inbox,
        "messenger.status",
        json!({"sender": {"id": psid}}),
    );
    let error = w.run(&broken).await.unwrap_err();
    assert!(error.to_string().contains("watermark"), "{error}");
}
