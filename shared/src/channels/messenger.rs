//! Messenger Send API adapter: `POST {graph}/{version}/me/messages?access_token=…` with the
//! page access token, `recipient.id` (the PSID), `messaging_type` and `message.text`.
//!
//! The token rides in the query string, as Meta documents; it never reaches a log line or an
//! error text (see [`super::http`]). [`ERRORS`] is Messenger's error table.

use futures::future::BoxFuture;
use serde_json::json;

use super::{
    ChannelSender, OutboundMessage, Sent,
    http::{self, HttpOptions, http_client},
    meta,
    verdict::{Class, Rule, SendError, ThrottleScope},
};
use crate::{config::Secret, inboxes::InboxKind};

/// Messenger's documented send errors (Graph codes), first match wins.
pub const ERRORS: &[Rule] = &[
    // Rate limits: application (4), API calls (613).
    Rule::code(4, Class::Throttled(ThrottleScope::Inbox)),
    Rule::code(613, Class::Throttled(ThrottleScope::Inbox)),
    // Temporary send error, service unavailable.
    Rule::code(1200, Class::Transient),
    Rule::code(2, Class::Transient),
    // Outside the 24-hour window (code 10 with subcode 2018278): this message only.
    Rule::subcode(10, 2018278, Class::Permanent),
    Rule::code(2018278, Class::Permanent),
    // Token expired or invalidated, permissions missing, page blocked from sending.
    Rule::code(190, Class::ChannelBroken),
    Rule::range(200, 299, Class::ChannelBroken),
    Rule::code(10, Class::ChannelBroken),
    Rule::code(368, Class::ChannelBroken),
    // Invalid recipient: no such user (100 / 2018001), person not available (551).
    Rule::code(2018001, Class::Permanent),
    Rule::code(551, Class::Permanent),
    Rule::code(100, Class::Permanent),
];

/// Where and as whom one Messenger inbox (a Facebook page) sends.
#[derive(Clone, Debug)]
pub struct MessengerConfig {
    /// `https://graph.facebook.com` in production.
    pub graph_base: url::Url,
    /// Graph API version, e.g. `v21.0`.
    pub api_version: String,
    pub page_access_token: Secret,
    pub http: HttpOptions,
}

pub struct MessengerSender {
    config: MessengerConfig,
}

impl MessengerSender {
    pub fn new(config: MessengerConfig) -> Self {
        Self { config }
    }

    async fn send_text(&self, message: &OutboundMessage) -> Result<Sent, SendError> {
        let mut url = http::endpoint(
            &self.config.graph_base,
            &[&self.config.api_version, "me", "messages"],
        )?;
        url.query_pairs_mut()
            .append_pair("access_token", self.config.page_access_token.expose());
        let request = http_client().post(url).json(&body(message));
        let answer = http::send(request, self.config.http).await?;
        if !answer.is_success() {
            return Err(meta::verdict(ERRORS, &answer));
        }
        let provider_message_id = meta::accepted_id(&answer, "/message_id")?;
        Ok(Sent {
            provider_message_id,
        })
    }
}

/// The Send API body: a `RESPONSE` inside the 24-hour window, a tagged message outside it.
fn body(message: &OutboundMessage) -> serde_json::Value {
    let mut body = json!({
        "recipient": { "id": message.recipient },
        "messaging_type": "RESPONSE",
        "message": { "text": message.text },
    });
    if let Some(tag) = &message.messenger_tag {
        body["messaging_type"] = json!("MESSAGE_TAG");
        body["tag"] = json!(tag);
    }
    body
}

impl ChannelSender for MessengerSender {
    fn kind(&self) -> InboxKind {
        InboxKind::Messenger
    }

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Sent, SendError>> {
        Box::pin(self.send_text(message))
    }
}
