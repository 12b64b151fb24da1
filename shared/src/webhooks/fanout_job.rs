//! The after-commit path from the event log to [`Webhooks::fan_out`]: every transaction that
//! logs events also stages one `webhook.fanout` job (queue `webhooks`) in `job_outbox`, in the
//! same transaction ([`crate::conversation`]'s `Tx::commit`). The outbox enqueues it after the
//! commit — or its retry / the relay does, if Redis was down — so a committed event always
//! reaches fan-out (at least once; fan-out is idempotent per event id).

use serde::{Deserialize, Serialize};

use super::{WebhookError, Webhooks, deliveries::QUEUE};
use crate::{
    events::{log, outbox::StagedJob},
    jobs::JobRegistry,
    queue::{Job, QueueName},
};

/// The job kind that fans logged events out to subscriptions.
pub const FANOUT_KIND: &str = "webhook.fanout";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FanOutTask {
    /// Event ids, in log order.
    pub event_ids: Vec<String>,
}

/// The staged job for the events of one transaction (`None` when it logged none).
pub fn staged(tenant_id: &str, correlation_id: &str, event_ids: Vec<String>) -> Option<StagedJob> {
    let first = event_ids.first()?.clone();
    let queue = QueueName::new(QUEUE).unwrap_or_else(|_| unreachable!("valid queue name"));
    let payload = serde_json::to_value(FanOutTask { event_ids }).unwrap_or_default();
    let job = Job::new(queue, FANOUT_KIND, payload)
        .with_tenant(tenant_id)
        .with_correlation_id(correlation_id);
    Some(StagedJob {
        job,
        dedup_key: Some(format!("fanout:{first}")),
    })
}

impl Webhooks {
    /// Loads the task's events from the log and fans each out. Returns how many deliveries
    /// were enqueued.
    pub async fn fan_out_logged(&self, task: &FanOutTask) -> Result<usize, WebhookError> {
        let events = {
            let mut conn = self.db.get().await?;
            log::load(&mut conn, &task.event_ids)
                .await
                .map_err(|e| match e {
                    crate::events::EventError::Database(e) => WebhookError::from(e),
                    other => WebhookError::Conflict(other.to_string()),
                })?
        };
        let mut enqueued = 0;
        for event in events {
            let envelope = serde_json::to_value(&event.envelope).unwrap_or_default();
            enqueued += self.fan_out(&envelope).await?.enqueued.len();
        }
        Ok(enqueued)
    }
}

/// Registers `webhook.fanout` on the worker's registry.
pub fn register(registry: &mut JobRegistry, webhooks: Webhooks) {
    registry.register(FANOUT_KIND, move |job: Job| {
        let webhooks = webhooks.clone();
        async move {
            let task: FanOutTask = serde_json::from_value(job.payload.clone())
                .map_err(|e| crate::jobs::JobError::Permanent(format!("payload: {e}")))?;
            webhooks.fan_out_logged(&task).await?;
            Ok(())
        }
    });
}

/// The [`Webhooks::on_disabled`] hook that sends `subscription.disabled` right away. The event
/// is already logged, with its broadcast (the tenant's `messages` channel) and its fan-out
/// staged in the outbox, by the transaction that disabled the subscription (see
/// [`super::record`]); this publishes and enqueues them now instead of waiting for the outbox
/// relay, which sends them anyway if this process dies first.
pub fn emit_disabled(
    conversations: crate::conversation::Conversations,
) -> impl Fn(super::SubscriptionDisabled) + Send + Sync + 'static {
    move |disabled| {
        let outbox = conversations.outbox.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(subscription = %disabled.subscription_id, "no runtime: subscription.disabled left to the outbox relay");
            return;
        };
        runtime.spawn(async move {
            if let Err(error) = outbox.flush_origin(&disabled.origin()).await {
                tracing::warn!(error = %error, subscription = %disabled.subscription_id, "subscription.disabled left to the outbox relay");
            }
        });
    }
}
