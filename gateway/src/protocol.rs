//! The Pusher Channels protocol (v7) as far as the gateway speaks it: the frames a client sends
//! and receives, and the private-channel auth signature, so pusher-js and Laravel Echo connect
//! unchanged.

use serde::Deserialize;
use serde_json::{Value, json};

/// A frame from the client. `data` is an object for subscribe, anything for the rest.
#[derive(Debug, Deserialize)]
pub struct ClientFrame {
    pub event: String,
    #[serde(default)]
    pub data: Value,
}

pub use shared::pusher::{sign, valid_channel_name, verify};

/// A fresh socket id in Pusher's `digits.digits` form.
pub fn new_socket_id() -> String {
    format!("{}.{}", rand::random::<u32>(), rand::random::<u32>())
}

pub fn connection_established(socket_id: &str, activity_timeout: u64) -> String {
    frame(
        "pusher:connection_established",
        None,
        json!({"socket_id": socket_id, "activity_timeout": activity_timeout}),
    )
}

pub fn subscription_succeeded(channel: &str) -> String {
    frame(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        json!({}),
    )
}

pub fn subscription_error(channel: &str, error: &str, status: u16) -> String {
    frame(
        "pusher:subscription_error",
        Some(channel),
        json!({"type": "AuthError", "error": error, "status": status}),
    )
}

pub fn error(code: u16, message: &str) -> String {
    json!({"event": "pusher:error", "data": {"code": code, "message": message}}).to_string()
}

pub fn pong() -> String {
    frame("pusher:pong", None, json!({}))
}

/// An application event on a channel; Pusher carries `data` as a JSON string.
pub fn event(name: &str, channel: &str, data: &Value) -> String {
    frame(name, Some(channel), data.clone())
}

fn frame(event: &str, channel: Option<&str>, data: Value) -> String {
    let mut frame = json!({"event": event, "data": data.to_string()});
    if let Some(channel) = channel {
        frame["channel"] = json!(channel);
    }
    frame.to_string()
}
