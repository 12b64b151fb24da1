//! Outbound channels: sending one reply to a customer through the inbox's provider (WAHA,
//! Messenger Send API, WhatsApp Cloud API, SMTP, the web widget's socket) and telling the
//! `deliveries` job what to do when that fails.
//!
//! Every adapter implements [`ChannelSender`]: it takes an [`OutboundMessage`] and returns the
//! provider's message id, or a [`SendError`] whose variant is the verdict of that adapter's error
//! table ([`verdict`]): throttled, transient, channel broken or permanent. [`verdict::job_error`]
//! maps a verdict to the queue's [`crate::jobs::JobError`] in one place. Around the send, the
//! caller uses [`throttle`] (a per-inbox token bucket in Redis, so it holds across worker
//! processes), [`idempotency`] (the provider's message id recorded before the job is acked) and,
//! when callbacks arrive, [`status`] (a pure function that never moves a message backwards).
//! [`delivery::Delivery::attempt`] strings the first three together, and [`handler`] runs the
//! `delivery.send` job with it, reaching the database through a trait the pipeline implements.
//!
//! Sending does not touch Postgres or emit events itself: [`handler::DeliveryStore`] does,
//! implemented by the conversation pipeline. Two operator-facing pieces read the inbox tables:
//! [`settings`] (the outbound credentials the worker sends with) and [`pause`] (paused inboxes,
//! and resuming one). See docs/deliveries.md.

pub mod delivery;
pub mod email;
pub mod handler;
pub mod http;
pub mod idempotency;
mod keys;
pub mod messenger;
mod meta;
pub mod pause;
pub mod settings;
pub mod status;
pub mod throttle;
pub mod verdict;
pub mod waha;
pub mod whatsapp_cloud;
pub mod widget;

use futures::future::BoxFuture;

use crate::inboxes::InboxKind;

pub use delivery::{ChannelSettings, Delivery, sender};
pub use email::{EmailSender, SmtpConfig, SmtpSecurity};
pub use handler::{DeliveryHandler, DeliveryStore, DeliveryTask, InboxState, SettingsSource};
pub use http::{HttpOptions, http_client};
pub use idempotency::{SendRecord, SentLedger};
pub use messenger::{MessengerConfig, MessengerSender};
pub use settings::{DbSettings, WahaDefaults};
pub use status::{DeliveryStatus, StatusCallback, StatusChange, next_status};
pub use throttle::{BucketConfig, Permit, Throttle};
pub use verdict::{ProviderError, SendError, ThrottleScope, job_error};
pub use waha::{WahaConfig, WahaSender};
pub use whatsapp_cloud::{WhatsappCloudConfig, WhatsappCloudSender};
pub use widget::WidgetSender;

/// One reply to send, whatever the channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Our id for the message (`msg_…`): the idempotency key, and the email's Message-ID.
    pub message_id: String,
    /// Who receives it, as the channel spells it: WAHA chatId (`4915…@c.us`), Messenger PSID,
    /// WhatsApp wa_id (digits), an email address, or the widget session's broadcast channel.
    pub recipient: String,
    pub text: String,
    /// Messenger only: a message tag (e.g. `HUMAN_AGENT`) sends with `messaging_type:
    /// MESSAGE_TAG`, outside the 24-hour window; without one the send is a `RESPONSE`.
    pub messenger_tag: Option<String>,
    /// Email only: subject and the customer's thread, so the reply lands in it.
    pub email: Option<EmailThread>,
}

impl OutboundMessage {
    /// A plain text reply; set `messenger_tag` or `email` after if the channel needs them.
    pub fn text(message_id: &str, recipient: &str, text: &str) -> Self {
        Self {
            message_id: message_id.to_owned(),
            recipient: recipient.to_owned(),
            text: text.to_owned(),
            messenger_tag: None,
            email: None,
        }
    }
}

/// The email thread a reply belongs to (RFC 5322 §3.6.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmailThread {
    pub subject: String,
    /// Message-ID of the customer's mail we answer, with or without angle brackets.
    pub in_reply_to: Option<String>,
    /// The thread's Message-IDs, oldest first (the customer's References plus their message).
    pub references: Vec<String>,
}

/// What the provider gave back for an accepted message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The provider's id for it (wamid, Messenger mid, WAHA id, Message-ID, our id for the
    /// widget): status callbacks refer to it.
    pub provider_message_id: String,
}

/// Sends one message through one inbox's provider. Implementations are cheap to share
/// (`Arc<dyn ChannelSender>`) and safe to call concurrently.
pub trait ChannelSender: Send + Sync {
    fn kind(&self) -> InboxKind;

    /// One attempt, bounded by the adapter's timeout; retries are the queue's business.
    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Sent, SendError>>;
}
