//! The Pusher Channels protocol (v7) as far as the gateway speaks it: the frames a client sends
//! and receives, and the private-channel auth signature, so pusher-js and Laravel Echo connect
//! unchanged.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// A frame from the client. `data` is an object for subscribe, anything for the rest.
#[derive(Debug, Deserialize)]
pub struct ClientFrame {
    pub event: String,
    #[serde(default)]
    pub data: Value,
}

/// `private-…` channel names: Pusher's alphabet, at most 200 characters.
pub fn valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b))
}

/// The signature a private channel's `auth` carries: `key:hex(HMAC-SHA256(secret, "socket_id:channel"))`.
pub fn sign(key: &str, secret: &str, socket_id: &str, channel: &str) -> String {
    format!("{key}:{}", hex::encode(mac(secret, socket_id, channel)))
}

fn mac(secret: &str, socket_id: &str, channel: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(format!("{socket_id}:{channel}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Checks `auth` in constant time.
pub fn verify(key: &str, secret: &str, socket_id: &str, channel: &str, auth: &str) -> bool {
    let Some((given_key, signature)) = auth.split_once(':') else {
        return false;
    };
    let Ok(given) = hex::decode(signature) else {
        return false;
    };
    given_key == key && bool::from(given.ct_eq(&mac(secret, socket_id, channel)))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_signature_round_trips_and_rejects_tampering() {
        let auth = sign("key", "secret", "123.456", "private-tenant.t1.messages");
        assert!(verify(
            "key",
            "secret",
            "123.456",
            "private-tenant.t1.messages",
            &auth
        ));
        assert!(!verify(
            "key",
            "secret",
            "123.457",
            "private-tenant.t1.messages",
            &auth
        ));
        assert!(!verify(
            "key",
            "secret",
            "123.456",
            "private-tenant.t2.messages",
            &auth
        ));
        assert!(!verify(
            "other",
            "secret",
            "123.456",
            "private-tenant.t1.messages",
            &auth
        ));
        assert!(!verify(
            "key",
            "secret",
            "123.456",
            "private-tenant.t1.messages",
            "key:zz"
        ));
    }

    #[test]
    fn pusher_documented_signature() {
        // The example of Pusher's private-channel authentication docs.
        let auth = sign(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "1234.1234",
            "private-foobar",
        );
        assert_eq!(
            auth,
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn channel_alphabet() {
        assert!(valid_channel_name("private-tenant.t_1.session.01HXYZ"));
        assert!(!valid_channel_name("private-tenant.t 1"));
        assert!(!valid_channel_name(&"a".repeat(201)));
    }
}
