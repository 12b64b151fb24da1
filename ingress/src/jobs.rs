//! The job kinds ingress produces and the queue each goes to: the contract with the workers.
//!
//! Every payload has the same outer shape, built in [`crate::intake::Routing::job`]:
//! `{"v": 1, "channel", "inbox_id", "tenant_id", "provider_message_id", "received_at",
//! "context", "raw"}` where `raw` is the provider's JSON for that one message or status,
//! verbatim, and `context` holds what the provider put around it (see docs/ingress.md).

use shared::queue::QueueName;

pub const WHATSAPP_MESSAGE: &str = "whatsapp.message";
pub const WHATSAPP_STATUS: &str = "whatsapp.status";
pub const MESSENGER_MESSAGE: &str = "messenger.message";
pub const MESSENGER_POSTBACK: &str = "messenger.postback";
pub const MESSENGER_STATUS: &str = "messenger.status";
pub const WAHA_MESSAGE: &str = "waha.message";
pub const WAHA_ACK: &str = "waha.ack";
pub const EMAIL_MESSAGE: &str = "email.message";
pub const WIDGET_MESSAGE: &str = "widget.message";

/// Every kind above, for documentation and tests.
pub const ALL_KINDS: [&str; 9] = [
    WHATSAPP_MESSAGE,
    WHATSAPP_STATUS,
    MESSENGER_MESSAGE,
    MESSENGER_POSTBACK,
    MESSENGER_STATUS,
    WAHA_MESSAGE,
    WAHA_ACK,
    EMAIL_MESSAGE,
    WIDGET_MESSAGE,
];

/// The queue of each channel (DESIGN.md §2): WhatsApp of either provider shares one queue.
pub fn queue(name: &'static str) -> QueueName {
    // Only called with the product's literal queue names below, which are valid.
    QueueName::new(name).unwrap_or_else(|_| unreachable!("{name} is a valid queue name"))
}

pub const WHATSAPP_QUEUE: &str = "whatsapp-messages";
pub const FACEBOOK_QUEUE: &str = "facebook";
pub const EMAIL_QUEUE: &str = "email";
pub const WIDGET_QUEUE: &str = "widget";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_product_queues() {
        for name in [WHATSAPP_QUEUE, FACEBOOK_QUEUE, EMAIL_QUEUE, WIDGET_QUEUE] {
            assert!(shared::queue::KNOWN_QUEUES.contains(&name));
            assert_eq!(queue(name).as_str(), name);
        }
    }
}
