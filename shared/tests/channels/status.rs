//! Status callbacks: the pure transition function, table-driven, then callbacks replayed late,
//! twice and out of order (watermarks included), parsed from the providers' callback shapes.

use serde_json::json;
use shared::channels::{
    DeliveryStatus::{self, *},
    StatusCallback, StatusChange, next_status,
    status::Tracked,
};

const SENT_AT: i64 = 1_763_801_100_000;

fn tracked(status: DeliveryStatus) -> Tracked<'static> {
    Tracked {
        status,
        provider_message_id: Some("m_1"),
        sent_at_ms: Some(SENT_AT),
    }
}

fn wa(status: &str) -> StatusCallback {
    StatusCallback::WhatsappCloud {
        status: status.into(),
        error: None,
    }
}

fn check(current: DeliveryStatus, callback: StatusCallback, expect: Option<DeliveryStatus>) {
    let got = next_status(tracked(current), &callback);
    let want = expect.map_or(StatusChange::NoChange, StatusChange::To);
    assert_eq!(got, want, "{current} + {callback:?}");
}

#[test]
fn transitions_only_move_forward() {
    let cases = [
        (Stored, wa("sent"), Some(Sent)),
        (Sent, wa("delivered"), Some(Delivered)),
        (Delivered, wa("read"), Some(Read)),
        (Sent, wa("read"), Some(Read)),
        (Read, wa("delivered"), None),
        (Delivered, wa("sent"), None),
        (Delivered, wa("delivered"), None),
        (Stored, wa("failed"), Some(Failed)),
        (Sent, wa("failed"), Some(Failed)),
        (Delivered, wa("failed"), None),
        (Read, wa("failed"), None),
        (Failed, wa("read"), None),
        (Failed, wa("sent"), None),
        (Sent, wa("deleted"), None),
        (Stored, StatusCallback::WahaAck { level: 1 }, Some(Sent)),
        (Sent, StatusCallback::WahaAck { level: 0 }, None),
        (Sent, StatusCallback::WahaAck { level: 2 }, Some(Delivered)),
        (Delivered, StatusCallback::WahaAck { level: 3 }, Some(Read)),
        (Sent, StatusCallback::WahaAck { level: 4 }, Some(Read)),
        (Read, StatusCallback::WahaAck { level: 2 }, None),
        (Sent, StatusCallback::WahaAck { level: -1 }, Some(Failed)),
        (Read, StatusCallback::WahaAck { level: -1 }, None),
    ];
    for (current, callback, expect) in cases {
        check(current, callback, expect);
    }
}

#[test]
fn watermarks_cover_every_message_sent_before_them() {
    let delivery = |watermark_ms, mids: &[&str]| StatusCallback::MessengerDelivery {
        watermark_ms,
        mids: mids.iter().map(|m| m.to_string()).collect(),
    };
    let read = |watermark_ms| StatusCallback::MessengerRead { watermark_ms };
    check(Sent, delivery(SENT_AT, &[]), Some(Delivered));
    check(Sent, delivery(SENT_AT + 5_000, &[]), Some(Delivered));
    check(Sent, delivery(SENT_AT - 1, &[]), None);
    check(Sent, delivery(SENT_AT - 1, &["m_1"]), Some(Delivered));
    check(Sent, delivery(SENT_AT - 1, &["m_other"]), None);
    check(Delivered, read(SENT_AT + 1), Some(Read));
    check(Sent, read(SENT_AT + 1), Some(Read));
    check(Sent, read(SENT_AT - 1), None);
    check(Read, delivery(SENT_AT + 1, &["m_1"]), None);
    // A message never accepted (no sent time) is not covered by any watermark.
    let unsent = Tracked {
        status: Stored,
        provider_message_id: None,
        sent_at_ms: None,
    };
    assert_eq!(next_status(unsent, &read(i64::MAX)), StatusChange::NoChange);
}

/// Applies callbacks in the given order, as the status handler would.
fn replay(callbacks: &[StatusCallback]) -> DeliveryStatus {
    callbacks.iter().fold(Stored, |status, callback| {
        match next_status(tracked(status), callback) {
            StatusChange::To(next) => next,
            StatusChange::NoChange => status,
        }
    })
}

#[test]
fn late_duplicate_and_out_of_order_callbacks_end_where_the_latest_truth_is() {
    let ordered = [wa("sent"), wa("delivered"), wa("read")];
    let shuffled = [
        wa("read"),
        wa("sent"),
        wa("delivered"),
        wa("read"),
        wa("sent"),
    ];
    assert_eq!(replay(&ordered), Read);
    assert_eq!(replay(&shuffled), Read);
    // failed after a 200 from the send API, then a stale "sent": stays failed.
    assert_eq!(
        replay(&[wa("sent"), wa("failed"), wa("sent"), wa("read")]),
        Failed
    );
    // A failure that arrives after the customer read it is stale.
    assert_eq!(replay(&[wa("read"), wa("failed")]), Read);
    let waha: Vec<_> = [3, 1, 2, 0, -1]
        .map(|level| StatusCallback::WahaAck { level })
        .to_vec();
    assert_eq!(replay(&waha), Read);
}

#[test]
fn callbacks_parse_from_the_providers_shapes() {
    let status = json!({
        "id": "wamid.HBgN",
        "status": "failed",
        "timestamp": "1763801310",
        "recipient_id": "5511987654321",
        "errors": [{"code": 131047, "title": "Re-engagement message",
                    "message": "Re-engagement message"}],
    });
    let (id, callback) = StatusCallback::from_whatsapp(&status).unwrap();
    assert_eq!(id, "wamid.HBgN");
    assert_eq!(
        callback.failure_reason().as_deref(),
        Some("Re-engagement message (code 131047)")
    );
    assert_eq!(
        next_status(tracked(Sent), &callback),
        StatusChange::To(Failed)
    );

    let delivery = json!({
        "sender": {"id": "7012345678901234"},
        "recipient": {"id": "104857600000001"},
        "delivery": {"mids": ["m_OutboundMid0001"], "watermark": 1763801199000_i64},
    });
    assert_eq!(
        StatusCallback::from_messenger(&delivery),
        Some(StatusCallback::MessengerDelivery {
            watermark_ms: 1763801199000,
            mids: vec!["m_OutboundMid0001".into()],
        })
    );
    let read = json!({"sender": {"id": "1"}, "read": {"watermark": 1763801299000_i64}});
    assert_eq!(
        StatusCallback::from_messenger(&read),
        Some(StatusCallback::MessengerRead {
            watermark_ms: 1763801299000
        })
    );

    let ack = json!({
        "event": "message.ack",
        "session": "default",
        "payload": {"id": "true_4915212345678@c.us_3EB0", "fromMe": true, "ack": 3, "ackName": "READ"},
    });
    assert_eq!(
        StatusCallback::from_waha_ack(&ack),
        Some((
            "true_4915212345678@c.us_3EB0".into(),
            StatusCallback::WahaAck { level: 3 }
        ))
    );
    assert_eq!(DeliveryStatus::Delivered.as_str().parse(), Ok(Delivered));
}
