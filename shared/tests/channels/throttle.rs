//! The per-inbox token bucket and recipient holds, on the real Redis: a bucket runs dry, a
//! throttle verdict (a provider's 429 with Retry-After) halves the rate and stops the inbox, a
//! pair-rate-limit verdict holds only that recipient. Waits are read from the permits, never
//! measured.

use std::time::Duration;

use serde_json::json;
use shared::channels::{
    BucketConfig, ChannelSender, OutboundMessage, Permit, ProviderError, SendError, Throttle,
    ThrottleScope,
};

use crate::{
    TestRedis,
    standin::{Reply, StandIn},
};

fn slow_bucket(capacity: u32) -> BucketConfig {
    BucketConfig {
        capacity,
        rate_per_sec: 0.001,
        min_rate_per_sec: 0.0001,
        recovery: Duration::from_secs(3600),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_grants_its_capacity_then_asks_to_wait() {
    let redis = TestRedis::new();
    let throttle = Throttle::new(redis.queues.clone());
    let config = slow_bucket(3);
    for _ in 0..3 {
        assert_eq!(
            throttle.try_acquire("inb_a", "r1", &config).await.unwrap(),
            Permit::Granted
        );
    }
    let Permit::Wait(wait) = throttle.try_acquire("inb_a", "r1", &config).await.unwrap() else {
        panic!("the fourth send must wait");
    };
    assert!(wait > Duration::from_secs(60), "{wait:?}");
    // Another inbox has a bucket of its own.
    assert_eq!(
        throttle.try_acquire("inb_b", "r1", &config).await.unwrap(),
        Permit::Granted
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acquire_turns_a_long_wait_into_a_throttle_verdict() {
    let redis = TestRedis::new();
    let throttle = Throttle::new(redis.queues.clone());
    let config = slow_bucket(1);
    throttle
        .acquire("inb_a", "r1", &config, Duration::ZERO)
        .await
        .unwrap();
    let error = throttle
        .acquire("inb_a", "r1", &config, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            SendError::Throttled {
                scope: ThrottleScope::Inbox,
                retry_after: Some(_),
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_retry_after_slows_the_whole_inbox() {
    let redis = TestRedis::new();
    let throttle = Throttle::new(redis.queues.clone());
    let config = BucketConfig {
        capacity: 100,
        rate_per_sec: 80.0,
        min_rate_per_sec: 1.0,
        recovery: Duration::from_secs(300),
    };
    let provider = StandIn::start().await;
    provider.reply(
        Reply::json(
            429,
            json!({"error": {"message": "Too many", "code": 130429}}),
        )
        .with_header("retry-after", "120"),
    );
    let sender = crate::whatsapp(&provider.base);
    assert_eq!(
        throttle
            .try_acquire("inb_wa", "5511", &config)
            .await
            .unwrap(),
        Permit::Granted
    );

    let verdict = sender
        .send(&OutboundMessage::text("msg_1", "5511", "hi"))
        .await
        .unwrap_err();
    let rate = throttle
        .on_verdict("inb_wa", "5511", &config, &verdict)
        .await
        .unwrap()
        .expect("the inbox's rate changed");

    assert!((1.0..=40.0).contains(&rate), "halved: {rate}");
    for recipient in ["5511", "someone-else"] {
        let Permit::Wait(wait) = throttle
            .try_acquire("inb_wa", recipient, &config)
            .await
            .unwrap()
        else {
            panic!("the inbox is on hold for every recipient");
        };
        assert!(
            wait > Duration::from_secs(100),
            "Retry-After honoured: {wait:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_throttles_never_go_below_the_floor() {
    let redis = TestRedis::new();
    let throttle = Throttle::new(redis.queues.clone());
    let config = BucketConfig {
        capacity: 10,
        rate_per_sec: 8.0,
        min_rate_per_sec: 1.0,
        recovery: Duration::from_secs(300),
    };
    let mut rates = Vec::new();
    for _ in 0..6 {
        rates.push(
            throttle
                .slow_down("inb_a", &config, Duration::from_millis(1))
                .await
                .unwrap(),
        );
    }
    assert!(rates[0] <= 4.0 + 1e-9, "{rates:?}");
    assert!(rates.windows(2).all(|w| w[1] <= w[0] + 0.01), "{rates:?}");
    assert!(rates.iter().all(|r| *r >= 1.0), "{rates:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pair_rate_limit_holds_only_that_recipient() {
    let redis = TestRedis::new();
    let throttle = Throttle::new(redis.queues.clone());
    let config = BucketConfig::for_kind(shared::inboxes::InboxKind::WhatsappCloud);
    let verdict = SendError::Throttled {
        scope: ThrottleScope::Recipient,
        retry_after: None,
        error: ProviderError::message("pair rate limit hit"),
    };

    let changed = throttle
        .on_verdict("inb_wa", "5511", &config, &verdict)
        .await
        .unwrap();

    assert_eq!(changed, None, "the inbox's rate is untouched");
    assert!(matches!(
        throttle.try_acquire("inb_wa", "5511", &config).await.unwrap(),
        Permit::Wait(wait) if wait > Duration::from_secs(30)
    ));
    assert_eq!(
        throttle
            .try_acquire("inb_wa", "5522", &config)
            .await
            .unwrap(),
        Permit::Granted
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verdicts_other_than_throttles_change_nothing() {
    let redis = TestRedis::new();
    let throttle = Throttle::new(redis.queues.clone());
    let config = slow_bucket(1);
    for verdict in [SendError::transient("x"), SendError::permanent("y")] {
        assert_eq!(
            throttle
                .on_verdict("inb_a", "r", &config, &verdict)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        throttle.try_acquire("inb_a", "r", &config).await.unwrap(),
        Permit::Granted
    );
}
