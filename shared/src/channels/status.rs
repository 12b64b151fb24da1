//! Delivery status of an outbound message, and the pure function that moves it when a provider
//! callback arrives: WhatsApp Cloud `statuses[]`, Messenger delivery and read watermarks, WAHA
//! `message.ack` levels.
//!
//! Callbacks come late, twice and out of order, so a status only ever moves forward
//! (stored < sent < delivered < read) and `failed` is terminal, reachable only before the
//! message was delivered (WhatsApp may report `failed` after the send API's 200). This module
//! decides; the caller loads the message, stores the change and emits `message.delivered`,
//! `message.read` or `message.delivery_failed`.
//!
//! [`advance`] is the one order of message statuses: the pipeline's
//! `conversation::state::MessageStatus` is this enum, its state machine defined by it.

use std::{fmt, str::FromStr};

use serde_json::Value;

/// Where an outbound message is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    New,
    /// Stored and queued for delivery.
    Stored,
    /// The provider accepted it.
    Sent,
    Delivered,
    Read,
    /// Terminal: the provider (or we) gave up on it.
    Failed,
}

impl DeliveryStatus {
    /// Every status, in the forward order (`Failed` last).
    pub const ALL: &'static [Self] = &[
        Self::New,
        Self::Stored,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Stored => "stored",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }

    /// Position on the forward path; `None` for the terminal `Failed`.
    fn rank(self) -> Option<u8> {
        match self {
            Self::New => Some(0),
            Self::Stored => Some(1),
            Self::Sent => Some(2),
            Self::Delivered => Some(3),
            Self::Read => Some(4),
            Self::Failed => None,
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown delivery status {s:?}"))
    }
}

/// One provider callback about one message (or, for watermarks, every message before a time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusCallback {
    /// WhatsApp Cloud `statuses[].status`: sent, delivered, read, failed (others are ignored);
    /// `error` is the first of `errors[]` for a failure.
    WhatsappCloud {
        status: String,
        error: Option<String>,
    },
    /// Messenger `delivery`: every message sent at or before `watermark_ms` was delivered;
    /// `mids` names some of them when present.
    MessengerDelivery {
        watermark_ms: i64,
        mids: Vec<String>,
    },
    /// Messenger `read`: every message sent at or before `watermark_ms` was read.
    MessengerRead { watermark_ms: i64 },
    /// WAHA `message.ack`: -1 ERROR, 0 PENDING, 1 SERVER, 2 DEVICE, 3 READ, 4 PLAYED.
    WahaAck { level: i64 },
}

/// What a callback does to a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusChange {
    /// Stale, duplicate, not about this message, or not a status we track.
    NoChange,
    To(DeliveryStatus),
}

/// The message a callback is applied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracked<'a> {
    pub status: DeliveryStatus,
    pub provider_message_id: Option<&'a str>,
    /// When the provider accepted it (ms since epoch), for watermarks.
    pub sent_at_ms: Option<i64>,
}

/// The status `message` moves to on `callback`, never backwards.
pub fn next_status(message: Tracked<'_>, callback: &StatusCallback) -> StatusChange {
    match observed(message, callback) {
        Some(seen) => advance(message.status, seen),
        None => StatusChange::NoChange,
    }
}

/// The monotonic rule on its own: forward moves only; `failed` only before delivery.
pub fn advance(current: DeliveryStatus, seen: DeliveryStatus) -> StatusChange {
    let moves = match (current.rank(), seen.rank()) {
        (None, _) => false,
        (Some(now), None) => now <= DeliveryStatus::Sent.rank().unwrap_or(2),
        (Some(now), Some(then)) => then > now,
    };
    if moves {
        StatusChange::To(seen)
    } else {
        StatusChange::NoChange
    }
}

/// What the callback says of this message, if anything.
fn observed(message: Tracked<'_>, callback: &StatusCallback) -> Option<DeliveryStatus> {
    match callback {
        StatusCallback::WhatsappCloud { status, .. } => match status.as_str() {
            "sent" => Some(DeliveryStatus::Sent),
            "delivered" => Some(DeliveryStatus::Delivered),
            "read" => Some(DeliveryStatus::Read),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        },
        StatusCallback::MessengerDelivery { watermark_ms, mids } => {
            let named = message
                .provider_message_id
                .is_some_and(|id| mids.iter().any(|m| m == id));
            (named || covered(message, *watermark_ms)).then_some(DeliveryStatus::Delivered)
        }
        StatusCallback::MessengerRead { watermark_ms } => {
            covered(message, *watermark_ms).then_some(DeliveryStatus::Read)
        }
        StatusCallback::WahaAck { level } => match level {
            -1 => Some(DeliveryStatus::Failed),
            1 => Some(DeliveryStatus::Sent),
            2 => Some(DeliveryStatus::Delivered),
            3 | 4 => Some(DeliveryStatus::Read),
            _ => None,
        },
    }
}

fn covered(message: Tracked<'_>, watermark_ms: i64) -> bool {
    message.sent_at_ms.is_some_and(|sent| sent <= watermark_ms)
}

impl StatusCallback {
    /// From one WhatsApp Cloud `statuses[]` entry: the wamid it is about, and the callback.
    pub fn from_whatsapp(status: &Value) -> Option<(String, Self)> {
        let id = status.get("id")?.as_str()?.to_owned();
        let error = status.pointer("/errors/0").map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
            let code = e.get("code").map(Value::to_string).unwrap_or_default();
            let detail = text("message")
                .or_else(|| text("title"))
                .unwrap_or_default();
            format!("{detail} (code {code})")
        });
        let status = status.get("status")?.as_str()?.to_owned();
        Some((id, Self::WhatsappCloud { status, error }))
    }

    /// From one Messenger `messaging[]` event carrying `delivery` or `read`.
    pub fn from_messenger(event: &Value) -> Option<Self> {
        if let Some(delivery) = event.get("delivery") {
            let mids = delivery
                .get("mids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let watermark_ms = delivery.get("watermark")?.as_i64()?;
            return Some(Self::MessengerDelivery { watermark_ms, mids });
        }
        let watermark_ms = event.pointer("/read/watermark")?.as_i64()?;
        Some(Self::MessengerRead { watermark_ms })
    }

    /// From a WAHA `message.ack` event (or its `payload`): the message id and the callback.
    pub fn from_waha_ack(event: &Value) -> Option<(String, Self)> {
        let payload = event.get("payload").unwrap_or(event);
        let id = payload.get("id")?.as_str()?.to_owned();
        let level = payload.get("ack")?.as_i64()?;
        Some((id, Self::WahaAck { level }))
    }

    /// The provider's reason for a failure callback, for `message.delivery_failed`.
    pub fn failure_reason(&self) -> Option<String> {
        match self {
            Self::WhatsappCloud { error, .. } => error.clone(),
            Self::WahaAck { level: -1 } => Some("WAHA ack ERROR".into()),
            _ => None,
        }
    }
}
