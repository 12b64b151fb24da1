//! WhatsApp Cloud API adapter: `POST {graph}/{version}/{phone_number_id}/messages` with a
//! Bearer token and `{"messaging_product": "whatsapp", "to", "type": "text", "text": {…}}`.
//!
//! [`ERRORS`] is WhatsApp's error table. A 200 only means Meta accepted the message: a `failed`
//! status callback may still follow (see [`super::status`]).

use futures::future::BoxFuture;
use serde_json::json;

use super::{
    ChannelSender, OutboundMessage, Sent,
    http::{self, HttpOptions, http_client},
    meta,
    verdict::{Class, Rule, SendError, ThrottleScope},
};
use crate::{config::Secret, inboxes::InboxKind};

/// WhatsApp Cloud API's documented send errors (Graph codes), first match wins.
pub const ERRORS: &[Rule] = &[
    // Rate limits: API calls (4), throughput (80007, 130429), Graph call limit (613).
    Rule::code(4, Class::Throttled(ThrottleScope::Inbox)),
    Rule::code(613, Class::Throttled(ThrottleScope::Inbox)),
    Rule::code(80007, Class::Throttled(ThrottleScope::Inbox)),
    Rule::code(130429, Class::Throttled(ThrottleScope::Inbox)),
    // Pair rate limit: too many messages to this one recipient.
    Rule::code(131056, Class::Throttled(ThrottleScope::Recipient)),
    // Unknown error, service unavailable, something went wrong, service temporarily down.
    Rule::code(1, Class::Transient),
    Rule::code(2, Class::Transient),
    Rule::code(131000, Class::Transient),
    Rule::code(131016, Class::Transient),
    // Token, permissions, account locked, account restricted for policy, spam rate limit.
    Rule::code(190, Class::ChannelBroken),
    Rule::range(200, 299, Class::ChannelBroken),
    Rule::code(10, Class::ChannelBroken),
    Rule::code(131031, Class::ChannelBroken),
    Rule::code(368, Class::ChannelBroken),
    Rule::code(131048, Class::ChannelBroken),
    // This message only: invalid parameter or recipient, undeliverable, re-engagement window
    // closed, unsupported type, Meta chose not to deliver.
    Rule::code(100, Class::Permanent),
    Rule::code(131026, Class::Permanent),
    Rule::code(131047, Class::Permanent),
    Rule::code(131051, Class::Permanent),
    Rule::code(131049, Class::Permanent),
];

/// Where and as whom one WhatsApp Cloud inbox (a business phone number) sends.
#[derive(Clone, Debug)]
pub struct WhatsappCloudConfig {
    /// `https://graph.facebook.com` in production.
    pub graph_base: url::Url,
    /// Graph API version, e.g. `v21.0`.
    pub api_version: String,
    pub phone_number_id: String,
    pub access_token: Secret,
    pub http: HttpOptions,
}

pub struct WhatsappCloudSender {
    config: WhatsappCloudConfig,
}

impl WhatsappCloudSender {
    pub fn new(config: WhatsappCloudConfig) -> Self {
        Self { config }
    }

    async fn send_text(&self, message: &OutboundMessage) -> Result<Sent, SendError> {
        let url = http::endpoint(
            &self.config.graph_base,
            &[
                &self.config.api_version,
                &self.config.phone_number_id,
                "messages",
            ],
        )?;
        let request = http_client()
            .post(url)
            .bearer_auth(self.config.access_token.expose())
            .json(&json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": message.recipient,
                "type": "text",
                "text": { "preview_url": false, "body": message.text },
            }));
        let answer = http::send(request, self.config.http).await?;
        if !answer.is_success() {
            return Err(meta::verdict(ERRORS, &answer));
        }
        let provider_message_id = meta::accepted_id(&answer, "/messages/0/id")?;
        Ok(Sent {
            provider_message_id,
        })
    }
}

impl ChannelSender for WhatsappCloudSender {
    fn kind(&self) -> InboxKind {
        InboxKind::WhatsappCloud
    }

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Sent, SendError>> {
        Box::pin(self.send_text(message))
    }
}
