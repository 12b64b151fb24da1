//! WAHA (WhatsApp HTTP API, self-hosted) adapter: `POST {base}/api/sendText` with
//! `{"session", "chatId", "text"}` and `X-Api-Key` when the server is configured with one.
//!
//! WAHA answers errors as NestJS does (`{"statusCode", "message", "error"}`), so its table
//! ([`ERRORS`]) is keyed by HTTP status. The message id comes back as a string (GOWS), as
//! `id._serialized` (WEBJS) or as `key.id` (NOWEB), depending on the engine.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{
    ChannelSender, OutboundMessage, Sent,
    http::{self, Answer, HttpOptions, http_client},
    verdict::{Class, ProviderError, Rule, SendError, ThrottleScope, class_of_status, lookup},
};
use crate::{config::Secret, inboxes::InboxKind};

/// WAHA's answers by HTTP status, first match wins; others fall back to the status class.
pub const ERRORS: &[Rule] = &[
    // Wrong or missing API key.
    Rule::code(401, Class::ChannelBroken),
    Rule::code(403, Class::ChannelBroken),
    // No such session, or the session is not WORKING (logged out, QR code to scan).
    Rule::code(404, Class::ChannelBroken),
    Rule::code(422, Class::ChannelBroken),
    // Invalid chatId or body: this message only.
    Rule::code(400, Class::Permanent),
    Rule::code(429, Class::Throttled(ThrottleScope::Inbox)),
    Rule::code(408, Class::Transient),
    Rule::range(500, 599, Class::Transient),
];

/// Where one WAHA inbox sends.
#[derive(Clone, Debug)]
pub struct WahaConfig {
    /// The WAHA server, e.g. `http://waha:3000`.
    pub base_url: url::Url,
    /// The WAHA session (one WhatsApp account), e.g. `default`.
    pub session: String,
    pub api_key: Option<Secret>,
    pub http: HttpOptions,
}

pub struct WahaSender {
    config: WahaConfig,
}

impl WahaSender {
    pub fn new(config: WahaConfig) -> Self {
        Self { config }
    }

    async fn send_text(&self, message: &OutboundMessage) -> Result<Sent, SendError> {
        let url = http::endpoint(&self.config.base_url, &["api", "sendText"])?;
        let mut request = http_client().post(url).json(&json!({
            "session": self.config.session,
            "chatId": message.recipient,
            "text": message.text,
        }));
        if let Some(key) = &self.config.api_key {
            request = request.header("X-Api-Key", key.expose());
        }
        let answer = http::send(request, self.config.http).await?;
        if !answer.is_success() {
            return Err(verdict(&answer));
        }
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let provider_message_id = message_id(&body).ok_or_else(|| {
            SendError::permanent(format!(
                "accepted without a message id (not retried, it may have been sent): {}",
                answer.excerpt()
            ))
        })?;
        Ok(Sent {
            provider_message_id,
        })
    }
}

/// The id of a sent message, whichever engine answered.
fn message_id(body: &Value) -> Option<String> {
    [
        body.get("id"),
        body.pointer("/id/_serialized"),
        body.pointer("/key/id"),
    ]
    .into_iter()
    .flatten()
    .find_map(|v| v.as_str().map(str::to_owned))
}

fn verdict(answer: &Answer) -> SendError {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let message = match body.get("message") {
        Some(Value::String(m)) => m.clone(),
        Some(other) => other.to_string(),
        None => answer.excerpt(),
    };
    let error = ProviderError {
        http_status: Some(answer.status),
        ..ProviderError::message(message)
    };
    lookup(ERRORS, i64::from(answer.status), None)
        .unwrap_or_else(|| class_of_status(answer.status))
        .verdict(error, answer.retry_after)
}

impl ChannelSender for WahaSender {
    fn kind(&self) -> InboxKind {
        InboxKind::Waha
    }

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Sent, SendError>> {
        Box::pin(self.send_text(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_of_every_engine() {
        assert_eq!(message_id(&json!({"id": "abc"})).as_deref(), Some("abc"));
        assert_eq!(
            message_id(&json!({"id": {"_serialized": "true_1@c.us_X"}})).as_deref(),
            Some("true_1@c.us_X")
        );
        assert_eq!(
            message_id(&json!({"key": {"id": "K1"}})).as_deref(),
            Some("K1")
        );
        assert_eq!(message_id(&json!({})), None);
    }
}
