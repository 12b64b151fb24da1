//! One delivery attempt, the Redis half of the deliveries handler: take a token from the inbox's
//! bucket, send once under the send record, and feed a throttle verdict back to the bucket.
//!
//! What it leaves to the handler, which owns the database: loading the message and its inbox,
//! pausing the inbox on [`SendError::ChannelBroken`], storing the provider id and the new status,
//! emitting events, and returning [`super::job_error`] of the verdict to the queue.

use std::{sync::Arc, time::Duration};

use super::{
    ChannelSender, EmailSender, MessengerConfig, MessengerSender, OutboundMessage, Sent,
    SmtpConfig, WahaConfig, WahaSender, WhatsappCloudConfig, WhatsappCloudSender, WidgetSender,
    idempotency::SentLedger,
    throttle::{BucketConfig, Throttle},
    verdict::SendError,
};
use crate::queue::Queues;

/// How long an attempt may wait in-process for a token before it hands the job back to the
/// queue as throttled: short, so a worker slot is not held by a slow inbox.
pub const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);

/// Everything needed to send through one inbox, as the inbox's settings provide it.
#[derive(Clone, Debug)]
pub enum ChannelSettings {
    Waha(WahaConfig),
    Messenger(MessengerConfig),
    WhatsappCloud(WhatsappCloudConfig),
    Email(SmtpConfig),
    Widget,
}

/// The sender for `settings`; build it once per inbox and keep it (the email sender owns an
/// SMTP connection pool; the HTTP senders share the process's client).
pub fn sender(
    settings: &ChannelSettings,
    redis: &Queues,
) -> Result<Arc<dyn ChannelSender>, SendError> {
    Ok(match settings {
        ChannelSettings::Waha(c) => Arc::new(WahaSender::new(c.clone())),
        ChannelSettings::Messenger(c) => Arc::new(MessengerSender::new(c.clone())),
        ChannelSettings::WhatsappCloud(c) => Arc::new(WhatsappCloudSender::new(c.clone())),
        ChannelSettings::Email(c) => Arc::new(EmailSender::new(c)?),
        ChannelSettings::Widget => Arc::new(WidgetSender::new(redis.clone())),
    })
}

/// The throttle and the send records of one key prefix.
#[derive(Clone)]
pub struct Delivery {
    pub throttle: Throttle,
    pub ledger: SentLedger,
}

impl Delivery {
    pub fn new(redis: Queues) -> Self {
        Self {
            throttle: Throttle::new(redis.clone()),
            ledger: SentLedger::new(redis),
        }
    }

    /// One attempt to send `message` through `inbox_id`'s `sender`.
    pub async fn attempt(
        &self,
        inbox_id: &str,
        sender: &dyn ChannelSender,
        bucket: &BucketConfig,
        message: &OutboundMessage,
    ) -> Result<Sent, SendError> {
        self.throttle
            .acquire(inbox_id, &message.recipient, bucket, MAX_INLINE_WAIT)
            .await?;
        let verdict = match self.ledger.send_once(sender, message).await {
            Ok(sent) => return Ok(sent),
            Err(verdict) => verdict,
        };
        if let Err(e) = self
            .throttle
            .on_verdict(inbox_id, &message.recipient, bucket, &verdict)
            .await
        {
            tracing::warn!(inbox_id, error = %e, "could not slow the inbox down");
        }
        Err(verdict)
    }
}
