//! The pipeline's side of `delivery.send` (shared::conversation::delivery_store) with the real
//! deliveries handler (shared::channels): a widget reply is published on the session's channel
//! and recorded delivered once; a send that keeps failing is recorded failed on its last try;
//! a 500 then a success sends one message and records two attempts with the 500's error;
//! exhausted retries fail the message with the provider's error.

// The WAHA / Graph API stand-in of shared's channel tests; not every part is used here.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../../../shared/tests/channels/standin.rs"]
mod standin;

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::json;
use shared::{
    channels::{ChannelSettings, DeliveryHandler, HttpOptions, WahaConfig},
    conversation::delivery_store::PipelineDeliveryStore,
    inboxes::{self, InboxKind, NewInbox},
    jobs::JobError,
    queue::{Job, QueueName},
};

use crate::World;
use standin::{Reply, StandIn};

fn waha_at(standin: &StandIn) -> ChannelSettings {
    ChannelSettings::Waha(WahaConfig {
        base_url: standin.base.clone(),
        session: "default".into(),
        api_key: None,
        http: HttpOptions {
            timeout: Duration::from_secs(10),
        },
    })
}

/// (attempts, last_error, sent_at set, failed_at set) of the message's delivery record.
async fn record(w: &World, message_id: &str) -> (i32, Option<String>, bool, bool) {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use shared::db::schema::message_deliveries as d;
    let mut conn = w.db.pool.get().await.unwrap();
    type Time = Option<chrono::DateTime<chrono::Utc>>;
    let (attempts, last_error, sent_at, failed_at): (i32, Option<String>, Time, Time) = d::table
        .find(message_id)
        .select((d::attempts, d::last_error, d::sent_at, d::failed_at))
        .first(&mut conn)
        .await
        .unwrap();
    (attempts, last_error, sent_at.is_some(), failed_at.is_some())
}

fn handler(w: &World, settings: HashMap<String, ChannelSettings>) -> Arc<DeliveryHandler> {
    let store = PipelineDeliveryStore::new(w.conversations().clone());
    DeliveryHandler::new(w.redis.queues.clone(), store, Arc::new(settings))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_widget_reply_is_published_on_the_session_channel_and_recorded_delivered_once() {
    let w = World::new().await;
    let mut inbox = NewInbox::new(&w.tenant_id, InboxKind::Widget, "Site");
    inbox.widget_token = Some("widget-token".into());
    let inbox_id = inboxes::create_inbox(&w.db.pool, &inbox).await.unwrap();
    let payload = json!({
        "v": 1, "channel": "widget", "inbox_id": inbox_id, "tenant_id": w.tenant_id,
        "provider_message_id": "c1", "received_at": "2026-11-23T10:00:00Z",
        "context": {"visitor_id": "v1"},
        "raw": {"visitor_id": "v1", "client_message_id": "c1", "text": "hello", "name": "Vi"},
    });
    let job = Job::new(QueueName::new("widget").unwrap(), "widget.message", payload)
        .with_tenant(&w.tenant_id);
    w.run(&job).await.unwrap();
    let delivery = w.deliveries().await.pop().unwrap();
    let session = delivery.payload["session_id"].as_str().unwrap().to_owned();
    let channel = format!(
        "{}private-tenant.{}.session.{session}",
        w.broadcast_prefix, w.tenant_id
    );
    assert_eq!(delivery.payload["recipient"], channel.as_str());

    let subscriber = w.subscribe(&w.tenant_id).await;
    let handler = handler(
        &w,
        HashMap::from([(inbox_id.clone(), ChannelSettings::Widget)]),
    );
    handler.run(&delivery).await.unwrap();
    handler.run(&delivery).await.unwrap();
    let message_id = delivery.payload["message_id"].as_str().unwrap();
    let sql = format!(
        "SELECT 1 FROM messages WHERE id = '{message_id}' AND status = 'delivered' AND provider_message_id IS NOT NULL"
    );
    assert_eq!(w.count(&sql).await, 1);
    assert_eq!(
        w.count("SELECT 1 FROM event_logs WHERE type = 'message.delivered'")
            .await,
        1,
        "recorded once"
    );
    let seen = subscriber.wait_for(1).await;
    let widget: Vec<_> = seen
        .iter()
        .filter(|(_, p)| p["event"] == "message.outbound")
        .collect();
    assert_eq!(widget.len(), 1, "published once: {seen:?}");
    assert_eq!(widget[0].0, channel);
    assert_eq!(widget[0].1["data"]["text"], delivery.payload["text"]);
    // Acceptance is delivery on the widget: sent and delivered at once, one attempt.
    assert_eq!(record(&w, message_id).await, (1, None, true, false));
    let both = format!(
        "SELECT 1 FROM message_deliveries WHERE message_id = '{message_id}' AND delivered_at = sent_at"
    );
    assert_eq!(w.count(&both).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_then_success_sends_one_message_and_records_two_attempts_with_the_error() {
    let w = World::new().await;
    w.run(&w.waha("1@c.us", "m1", "hello")).await.unwrap();
    let delivery = w.deliveries().await.pop().unwrap();
    let message_id = delivery.payload["message_id"].as_str().unwrap().to_owned();
    let waha = StandIn::start().await;
    waha.reply(Reply::json(
        500,
        json!({"statusCode": 500, "message": "Session is restarting"}),
    ))
    .reply(Reply::json(201, json!({"id": "true_1@c.us_3EB0RETRIED"})));
    let handler = handler(&w, HashMap::from([(w.inbox_id.clone(), waha_at(&waha))]));

    let error = handler.run(&delivery).await.unwrap_err();
    assert!(matches!(error, JobError::Transient(_)), "{error:?}");
    let (attempts, last_error, sent, _) = record(&w, &message_id).await;
    assert_eq!((attempts, sent), (1, false));
    assert!(last_error.unwrap().contains("Session is restarting"));

    let retry = delivery.next_attempt(&error.to_string());
    handler.run(&retry).await.unwrap();
    handler.run(&retry).await.unwrap(); // a rerun after the outcome was stored: nothing sent

    let requests = waha.requests();
    assert_eq!(requests.len(), 2, "one refused, one accepted: {requests:?}");
    assert_eq!(requests[0].body, requests[1].body, "the same message");
    let sent = format!(
        "SELECT 1 FROM messages WHERE id = '{message_id}' AND status = 'sent' AND provider_message_id = 'true_1@c.us_3EB0RETRIED'"
    );
    assert_eq!(w.count(&sent).await, 1);
    let (attempts, last_error, sent, failed) = record(&w, &message_id).await;
    assert_eq!((attempts, sent, failed), (2, true, false));
    assert!(
        last_error.unwrap().contains("Session is restarting"),
        "the refused attempt's error is kept"
    );
    assert_eq!(
        w.count("SELECT 1 FROM event_logs WHERE type LIKE 'message.deliver%'")
            .await,
        0,
        "sent has no event: delivered comes by callback"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_retries_fail_the_message_with_the_providers_error() {
    let w = World::new().await;
    w.run(&w.waha("1@c.us", "m1", "hello")).await.unwrap();
    let delivery = w.deliveries().await.pop().unwrap();
    let message_id = delivery.payload["message_id"].as_str().unwrap().to_owned();
    let waha = StandIn::start().await;
    for _ in 0..2 {
        waha.reply(Reply::json(
            503,
            json!({"statusCode": 503, "message": "WhatsApp session STARTING"}),
        ));
    }
    let handler = handler(&w, HashMap::from([(w.inbox_id.clone(), waha_at(&waha))]));
    let error = handler.run(&delivery).await.unwrap_err();
    let mut last = delivery.next_attempt(&error.to_string());
    last.attempt = last.max_attempts;
    handler.run(&last).await.unwrap_err();

    let failed = format!("SELECT 1 FROM messages WHERE id = '{message_id}' AND status = 'failed'");
    assert_eq!(w.count(&failed).await, 1);
    let (attempts, last_error, sent, failed) = record(&w, &message_id).await;
    assert_eq!((attempts, sent, failed), (2, false, true));
    assert!(
        last_error
            .as_deref()
            .unwrap()
            .contains("WhatsApp session STARTING"),
        "{last_error:?}"
    );
    let events = w.events().await;
    let failures: Vec<_> = events
        .iter()
        .filter(|e| e.envelope.event_type == "message.delivery_failed")
        .collect();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].envelope.data["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("WhatsApp session STARTING")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_send_that_keeps_failing_is_retried_then_recorded_failed() {
    let w = World::new().await;
    w.run(&w.waha("1@c.us", "m1", "hello")).await.unwrap();
    let delivery = w.deliveries().await.pop().unwrap();
    let unreachable = WahaConfig {
        base_url: "http://127.0.0.1:9".parse().unwrap(),
        session: "default".into(),
        api_key: None,
        http: HttpOptions {
            timeout: Duration::from_millis(500),
        },
    };
    let handler = handler(
        &w,
        HashMap::from([(w.inbox_id.clone(), ChannelSettings::Waha(unreachable))]),
    );
    let first = handler.run(&delivery).await.unwrap_err();
    assert!(!matches!(first, JobError::Permanent(_)), "{first:?}");
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE status = 'failed'")
            .await,
        0,
        "not yet"
    );
    let mut last = delivery.clone();
    last.attempt = last.max_attempts;
    handler.run(&last).await.unwrap_err();
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE status = 'failed'")
            .await,
        1
    );
    let failed = w
        .events()
        .await
        .into_iter()
        .find(|e| e.envelope.event_type == "message.delivery_failed")
        .unwrap();
    assert!(
        !failed.envelope.data["status"]["reason"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(failed.envelope.correlation_id, delivery.correlation_id);
}
