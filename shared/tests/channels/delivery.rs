//! One delivery attempt end to end on Redis and a loopback provider: a 429 slows the inbox so
//! the next attempt waits without calling the provider; settings build the right sender.

use std::time::Duration;

use serde_json::json;
use shared::{
    channels::{
        BucketConfig, ChannelSettings, Delivery, OutboundMessage, SendError, ThrottleScope,
        WahaConfig, sender,
    },
    config::Secret,
    inboxes::InboxKind,
};

use crate::{
    TestRedis,
    standin::{Reply, StandIn},
};

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_inbox_holds_its_next_send_back() {
    let redis = TestRedis::new();
    let delivery = Delivery::new(redis.queues.clone());
    let provider = StandIn::start().await;
    provider.reply(
        Reply::json(429, json!({"message": "Too Many Requests"})).with_header("retry-after", "120"),
    );
    let waha = sender(
        &ChannelSettings::Waha(WahaConfig {
            base_url: provider.base.clone(),
            session: "default".into(),
            api_key: Some(Secret::new("k")),
            http: crate::http(),
        }),
        &redis.queues,
    )
    .unwrap();
    let bucket = BucketConfig::for_kind(InboxKind::Waha);
    let message = OutboundMessage::text("msg_1", "1@c.us", "hi");

    let first = delivery
        .attempt("inb_w", waha.as_ref(), &bucket, &message)
        .await
        .unwrap_err();
    let second = delivery
        .attempt("inb_w", waha.as_ref(), &bucket, &message)
        .await
        .unwrap_err();

    assert!(
        matches!(first, SendError::Throttled { retry_after: Some(d), .. } if d == Duration::from_secs(120)),
        "{first:?}"
    );
    assert!(
        matches!(second, SendError::Throttled { scope: ThrottleScope::Inbox, retry_after: Some(d), .. } if d > Duration::from_secs(100)),
        "{second:?}"
    );
    assert_eq!(
        provider.requests().len(),
        1,
        "the held attempt never reached WAHA"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_build_the_sender_of_their_kind() {
    let redis = TestRedis::new();
    let widget = sender(&ChannelSettings::Widget, &redis.queues).unwrap();
    assert_eq!(widget.kind(), InboxKind::Widget);
    let email = sender(
        &ChannelSettings::Email(shared::channels::SmtpConfig {
            host: "127.0.0.1".into(),
            port: 2525,
            security: shared::channels::SmtpSecurity::Plain,
            username: None,
            password: None,
            from: "not a mailbox".into(),
            timeout: Duration::from_secs(5),
        }),
        &redis.queues,
    );
    assert!(
        matches!(email, Err(SendError::ChannelBroken { .. })),
        "a bad from address is the inbox's problem"
    );
}
