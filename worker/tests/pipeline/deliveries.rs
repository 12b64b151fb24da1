//! The pipeline's side of `delivery.send` (shared::conversation::delivery_store) with the real
//! deliveries handler (shared::channels): a widget reply is published on the session's channel
//! and recorded delivered once; a send that keeps failing is recorded failed on its last try.

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
