//! Send records (idempotency): a deliveries job that runs again after the provider accepted the
//! message (a crash between the send and the ack) does not send it twice; the window that
//! remains (a crash between the provider's acceptance and the record) sends again, as
//! documented.

use serde_json::json;
use shared::channels::{OutboundMessage, SendError, SendRecord, SentLedger};

use crate::{
    TestRedis, messenger,
    standin::{Reply, StandIn},
};

#[tokio::test(flavor = "multi_thread")]
async fn records_move_from_fresh_to_in_flight_to_sent() {
    let redis = TestRedis::new();
    let ledger = SentLedger::new(redis.queues.clone());
    assert_eq!(ledger.begin("msg_1").await.unwrap(), SendRecord::Fresh);
    assert!(matches!(
        ledger.begin("msg_1").await.unwrap(),
        SendRecord::InFlight { .. }
    ));
    ledger.record_sent("msg_1", "m_1").await.unwrap();
    ledger.release("msg_1").await.unwrap();
    assert_eq!(
        ledger.begin("msg_1").await.unwrap(),
        SendRecord::Sent {
            provider_message_id: "m_1".into()
        }
    );
    assert_eq!(ledger.begin("msg_2").await.unwrap(), SendRecord::Fresh);
    ledger.release("msg_2").await.unwrap();
    assert_eq!(ledger.begin("msg_2").await.unwrap(), SendRecord::Fresh);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_rerun_after_the_provider_accepted_does_not_send_twice() {
    let redis = TestRedis::new();
    let ledger = SentLedger::new(redis.queues.clone());
    let provider = StandIn::start().await;
    provider.reply(Reply::json(
        200,
        json!({"recipient_id": "1", "message_id": "m_1"}),
    ));
    let sender = messenger(&provider.base);
    let message = OutboundMessage::text("msg_1", "1", "hi");

    let first = ledger.send_once(&sender, &message).await.unwrap();
    // The worker dies here, before the message row and the ack: the job runs again.
    let second = ledger.send_once(&sender, &message).await.unwrap();

    assert_eq!(first, second);
    assert_eq!(
        provider.requests().len(),
        1,
        "one message reached the provider"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_then_success_sends_one_message() {
    let redis = TestRedis::new();
    let ledger = SentLedger::new(redis.queues.clone());
    let provider = StandIn::start().await;
    provider
        .reply(Reply::json(
            500,
            json!({"error": {"message": "oops", "code": 2}}),
        ))
        .reply(Reply::json(
            200,
            json!({"recipient_id": "1", "message_id": "m_9"}),
        ));
    let sender = messenger(&provider.base);
    let message = OutboundMessage::text("msg_1", "1", "hi");

    let error = ledger.send_once(&sender, &message).await.unwrap_err();
    assert!(matches!(error, SendError::Transient { .. }), "{error:?}");
    // The refused attempt released its claim: the retry is a fresh send, not an uncertain one.
    let sent = ledger.send_once(&sender, &message).await.unwrap();

    assert_eq!(sent.provider_message_id, "m_9");
    assert_eq!(
        provider.requests().len(),
        2,
        "two attempts, one message delivered"
    );
    assert_eq!(
        ledger.begin("msg_1").await.unwrap(),
        SendRecord::Sent {
            provider_message_id: "m_9".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_window_a_crash_before_the_record_sends_again() {
    let redis = TestRedis::new();
    let ledger = SentLedger::new(redis.queues.clone());
    let provider = StandIn::start().await;
    provider.reply(Reply::json(
        200,
        json!({"recipient_id": "1", "message_id": "m_2"}),
    ));
    let sender = messenger(&provider.base);
    let message = OutboundMessage::text("msg_1", "1", "hi");
    // An earlier attempt claimed the send and died before recording any outcome.
    assert_eq!(ledger.begin("msg_1").await.unwrap(), SendRecord::Fresh);

    let sent = ledger.send_once(&sender, &message).await.unwrap();

    assert_eq!(sent.provider_message_id, "m_2");
    assert_eq!(
        provider.requests().len(),
        1,
        "at least once: the retry sends"
    );
}
