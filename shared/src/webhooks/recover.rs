//! Recovery (`POST /api/events/subscriptions/{id}/recover`): re-enable a subscription and
//! re-send, oldest first and with their original `webhook-id`, the matching events it was not
//! delivered since `since` (default: the start of its failure streak), within the retention
//! window.
//!
//! "Oldest first" is the order the jobs enter the stream; with several workers the arrival order
//! is best effort, as with any parallel queue (receivers order by the event's `timestamp`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl, scoped_futures::ScopedFutureExt};

use super::{
    WebhookError, Webhooks,
    deliveries::{DeliveryTask, status},
    subscriptions::{self, Subscription},
};
use crate::db::schema::webhook_deliveries as rows;

/// What a recovery did.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovered {
    pub subscription: Subscription,
    /// The lower bound used.
    pub since: DateTime<Utc>,
    /// Events re-sent, in the order they were enqueued (oldest first).
    pub event_ids: Vec<String>,
}

impl Webhooks {
    /// `None` when the tenant has no such subscription.
    pub async fn recover(
        &self,
        tenant_id: &str,
        id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Option<Recovered>, WebhookError> {
        let now = self.clock.now();
        let floor = self.retention_floor(now);
        let mut conn = self.db.get().await?;
        conn.transaction::<_, WebhookError, _>(|conn| {
            async move {
                let Some(sub) = subscriptions::lock_for_tenant(conn, tenant_id, id).await? else {
                    return Ok(None);
                };
                let since = since
                    .or(sub.failure_streak_started_at)
                    .or(sub.disabled_at)
                    .unwrap_or(floor)
                    .max(floor);
                let owed: Vec<(String, i32)> = rows::table
                    .filter(rows::subscription_id.eq(id))
                    .filter(rows::status.eq_any([status::HELD, status::FAILED]))
                    .filter(rows::event_at.ge(since).or(rows::last_attempt_at.ge(since)))
                    .filter(rows::created_at.ge(floor))
                    .order((rows::event_at.asc(), rows::event_id.asc()))
                    .select((rows::event_id, rows::attempts))
                    .load(conn)
                    .await?;
                let event_ids: Vec<String> = owed.iter().map(|(e, _)| e.clone()).collect();
                diesel::update(
                    rows::table
                        .filter(rows::subscription_id.eq(id))
                        .filter(rows::event_id.eq_any(&event_ids)),
                )
                .set((
                    rows::status.eq(status::PENDING),
                    rows::next_attempt_at.eq(Some(now)),
                ))
                .execute(conn)
                .await?;
                let subscription = subscriptions::reset_failures(conn, id).await?;
                let jobs: Vec<_> = owed
                    .iter()
                    .map(|(event, attempts)| {
                        DeliveryTask::first(id, event, attempts + 1).to_job(tenant_id, event)
                    })
                    .collect();
                // Enqueued before the commit: a failed commit leaves at most duplicate jobs,
                // which the handler drops; never an event marked pending with no job.
                self.queues.enqueue_batch(&jobs).await?;
                Ok(Some(Recovered {
                    subscription,
                    since,
                    event_ids,
                }))
            }
            .scope_boxed()
        })
        .await
    }
}
