//! The pipeline's side of the `delivery.send` handler (shared::channels::handler): what a send
//! did to the message, recorded on the `messages` table with its event, in one transaction.
//!
//! `sent` → the provider's id recorded, the attempt counted in `message_deliveries` and the
//! message moved to the status acceptance means on its channel ([`accepted_status`]): `sent`
//! (no event; provider callbacks move it on) or, for the widget, `delivered` with
//! `message.delivered`. A refused attempt → counted, its error kept as `last_error`. `failed` →
//! `message.delivery_failed` with the reason. `inbox_broken` → `inbox.delivery_paused` (the
//! pause itself is the handler's Redis flag). Every method is idempotent: a rerun finds the
//! message already past that point and records nothing.

use std::sync::Arc;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures::future::BoxFuture;
use serde_json::json;

use super::{ConversationError, Conversations, messages};
use crate::{
    channels::{
        handler::{DeliveryStore, DeliveryTask},
        status::DeliveryStatus,
        verdict::SendError,
    },
    db::schema::messages as messages_t,
    events::{NewEvent, Route, types},
    inboxes::InboxKind,
    jobs::JobError,
};

/// What the provider's acceptance means on `channel`. The widget publishes to the visitor's
/// session channel: there is no later receipt, so acceptance is delivery. Every other channel is
/// `sent` until its provider says more (WhatsApp Cloud statuses, WAHA acks, Messenger
/// watermarks); email has no receipts and stays `sent`.
pub fn accepted_status(channel: InboxKind) -> DeliveryStatus {
    match channel {
        InboxKind::Widget => DeliveryStatus::Delivered,
        _ => DeliveryStatus::Sent,
    }
}

/// [`DeliveryStore`] on the pipeline's tables.
pub struct PipelineDeliveryStore {
    conversations: Conversations,
}

impl PipelineDeliveryStore {
    pub fn new(conversations: Conversations) -> Arc<Self> {
        Arc::new(Self { conversations })
    }

    fn causation(task: &DeliveryTask) -> String {
        format!("delivery:{}", task.message_id)
    }

    async fn status_of(
        &self,
        task: &DeliveryTask,
    ) -> Result<Option<DeliveryStatus>, ConversationError> {
        let mut conn = self.conversations.db.get().await?;
        let status: Option<String> = messages_t::table
            .filter(messages_t::id.eq(&task.message_id))
            .filter(messages_t::tenant_id.eq(&task.tenant_id))
            .select(messages_t::status)
            .first(&mut conn)
            .await
            .optional()?;
        Ok(status.and_then(|s| s.parse().ok()))
    }

    async fn record_sent(
        &self,
        task: &DeliveryTask,
        provider_id: &str,
    ) -> Result<(), ConversationError> {
        let mut tx = self
            .conversations
            .begin(&task.tenant_id, &Self::causation(task))
            .await?;
        let accepted = accepted_status(task.channel);
        let result = messages::record_sent(&mut tx, &task.message_id, provider_id, accepted).await;
        let (_, effects) = tx.finish(result).await?;
        self.conversations.settle(effects).await;
        Ok(())
    }

    async fn record_refused(
        &self,
        task: &DeliveryTask,
        error: &SendError,
    ) -> Result<(), ConversationError> {
        let mut tx = self
            .conversations
            .begin(&task.tenant_id, &Self::causation(task))
            .await?;
        let result =
            messages::record_attempt_error(&mut tx, &task.message_id, &error.to_string()).await;
        let (_, effects) = tx.finish(result).await?;
        self.conversations.settle(effects).await;
        Ok(())
    }

    async fn record_failed(
        &self,
        task: &DeliveryTask,
        error: &SendError,
    ) -> Result<(), ConversationError> {
        let mut tx = self
            .conversations
            .begin(&task.tenant_id, &Self::causation(task))
            .await?;
        let result = messages::record_failed(&mut tx, &task.message_id, &error.to_string()).await;
        let (_, effects) = tx.finish(result).await?;
        self.conversations.settle(effects).await;
        Ok(())
    }

    async fn record_broken(
        &self,
        task: &DeliveryTask,
        error: &SendError,
    ) -> Result<(), ConversationError> {
        let mut tx = self
            .conversations
            .begin(&task.tenant_id, &Self::causation(task))
            .await?;
        let result = async {
            let message = messages::lock(&mut tx, &task.message_id).await?;
            let session = super::sessions::get(&mut tx, &message.session_id).await?;
            // The durable pause, with its event: the Redis flag is only the fast path.
            crate::inboxes::outbound::record_pause(tx.conn(), &task.inbox_id, &error.to_string())
                .await
                .map_err(ConversationError::from)?;
            tx.emit(NewEvent {
                event_type: types::INBOX_DELIVERY_PAUSED,
                aggregate_type: "inbox",
                aggregate_id: task.inbox_id.clone(),
                correlation_id: session.correlation_id.clone(),
                data: json!({ "inbox_id": task.inbox_id, "reason": error.to_string(), "message_id": message.id }),
                route: Route::default(),
            })
            .await
        }
        .await;
        let (_, effects) = tx.finish(result).await?;
        self.conversations.settle(effects).await;
        Ok(())
    }
}

impl DeliveryStore for PipelineDeliveryStore {
    fn status<'a>(
        &'a self,
        task: &'a DeliveryTask,
    ) -> BoxFuture<'a, Result<Option<DeliveryStatus>, JobError>> {
        Box::pin(async move { Ok(self.status_of(task).await?) })
    }

    fn sent<'a>(
        &'a self,
        task: &'a DeliveryTask,
        provider_message_id: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move { Ok(self.record_sent(task, provider_message_id).await?) })
    }

    fn attempt_refused<'a>(
        &'a self,
        task: &'a DeliveryTask,
        error: &'a SendError,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move { Ok(self.record_refused(task, error).await?) })
    }

    fn failed<'a>(
        &'a self,
        task: &'a DeliveryTask,
        error: &'a SendError,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move { Ok(self.record_failed(task, error).await?) })
    }

    fn inbox_broken<'a>(
        &'a self,
        task: &'a DeliveryTask,
        error: &'a SendError,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move { Ok(self.record_broken(task, error).await?) })
    }
}
