//! The job kinds this worker runs. Features register their handlers here; the queue never
//! needs to change when a kind is added.
//!
//! - built-in kinds (`noop`, `record`, `sleep`, `flaky`): shared::jobs::builtin
//! - the conversation pipeline's inbound kinds (`waha.message`, `whatsapp.message`,
//!   `messenger.message`, `messenger.postback`, `email.message`, `widget.message`) and status
//!   kinds (`waha.ack`, `whatsapp.status`, `messenger.status`): [`crate::handlers`]
//! - webhook subscriptions (`webhook.fanout`, `webhook.deliver`, queue `webhooks`):
//!   shared::webhooks, configured from `WEBHOOK_*`

use shared::{
    db::DbPool,
    jobs::{JobRegistry, builtin},
    webhooks::{self, WebhookConfig, Webhooks},
};

use crate::handlers::{self, Pipeline};

/// Every kind, around `pipeline` (`Pipeline::from_env` in the worker: BROADCAST_PREFIX,
/// BOT_RULES_FILE…).
pub fn with_pipeline(db: DbPool, pipeline: Pipeline) -> JobRegistry {
    let mut registry = JobRegistry::new();
    builtin::register(&mut registry, db);
    match webhooks_for(&pipeline) {
        Ok(hooks) => {
            webhooks::fanout_job::register(&mut registry, hooks.clone());
            webhooks::register(&mut registry, hooks);
        }
        Err(error) => tracing::error!(error = %error, "webhook kinds not registered"),
    }
    handlers::register(&mut registry, pipeline);
    registry
}

/// Webhook delivery with `WEBHOOK_*` from the environment; a disabled subscription is logged
/// and broadcast as `subscription.disabled` through the pipeline's outbox.
pub fn webhooks_for(pipeline: &Pipeline) -> Result<Webhooks, webhooks::WebhookError> {
    let conversations = pipeline.conversations.clone();
    let config =
        WebhookConfig::from_env().map_err(|e| webhooks::WebhookError::Invalid(e.to_string()))?;
    Ok(Webhooks::new(
        conversations.db.clone(),
        conversations.outbox.queues().clone(),
        config,
    )?
    .on_disabled(webhooks::fanout_job::emit_disabled(conversations)))
}
