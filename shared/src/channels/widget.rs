//! Web widget adapter: the reply is published on the session's broadcast channel (Redis pub/sub,
//! Laravel broadcaster format `{"event", "data", "socket": null}`), which the socket gateway
//! pushes to the visitor's browser.
//!
//! There is no gateway acknowledgement yet, so a publish that Redis accepted counts as delivered
//! at once; the provider message id is our own message id (the widget dedups on it). The caller
//! names the channel (`OutboundMessage::recipient`), prefix included: broadcast naming belongs
//! to the events module, not here.

use futures::future::BoxFuture;
use serde_json::json;

use super::{ChannelSender, OutboundMessage, Sent, verdict::SendError};
use crate::{inboxes::InboxKind, queue::Queues};

/// The event name the widget listens for.
pub const WIDGET_EVENT: &str = "message.outbound";

pub struct WidgetSender {
    redis: Queues,
}

impl WidgetSender {
    pub fn new(redis: Queues) -> Self {
        Self { redis }
    }

    async fn publish(&self, message: &OutboundMessage) -> Result<Sent, SendError> {
        let payload = json!({
            "event": WIDGET_EVENT,
            "data": {
                "message_id": message.message_id,
                "text": message.text,
                "sent_at": chrono::Utc::now().to_rfc3339(),
            },
            "socket": null,
        });
        let mut conn = self
            .redis
            .conn()
            .await
            .map_err(|e| SendError::transient(format!("redis: {e}")))?;
        redis::cmd("PUBLISH")
            .arg(&message.recipient)
            .arg(payload.to_string())
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| SendError::transient(format!("redis publish: {e}")))?;
        Ok(Sent {
            provider_message_id: message.message_id.clone(),
        })
    }
}

impl ChannelSender for WidgetSender {
    fn kind(&self) -> InboxKind {
        InboxKind::Widget
    }

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Sent, SendError>> {
        Box::pin(self.publish(message))
    }
}
