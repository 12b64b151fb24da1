//! Replay (`POST /api/events/subscriptions/{id}/replay`, issue 7): redeliver to one active
//! subscription every matching event logged since `since` (never older than the retention
//! window), oldest first, with their original `webhook-id` — delivered ones again, undelivered
//! and held ones too, and events the subscription never saw (it was created later). Deliveries
//! already in flight are left to finish. Unlike [`Webhooks::recover`] it does not re-enable.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl, scoped_futures::ScopedFutureExt};

use super::{
    WebhookError, Webhooks,
    deliveries::{DeliveryTask, status},
    subscriptions,
};
use crate::{
    db::schema::{event_logs as el, webhook_deliveries as rows},
    events::log,
};

/// At most this many events per replay call (the caller pages with a later `since`).
pub const REPLAY_LIMIT: i64 = 5_000;

/// What a replay enqueued.
#[derive(Clone, Debug, PartialEq)]
pub struct Replayed {
    pub since: DateTime<Utc>,
    /// Events re-sent, oldest first.
    pub event_ids: Vec<String>,
}

impl Webhooks {
    /// `None` when the tenant has no such subscription; `Conflict` when it is disabled.
    pub async fn replay(
        &self,
        tenant_id: &str,
        id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Replayed>, WebhookError> {
        let now = self.clock.now();
        let floor = self.retention_floor(now);
        let since = since.max(floor);
        let mut conn = self.db.get().await?;
        conn.transaction::<_, WebhookError, _>(|conn| {
            async move {
                let Some(sub) = subscriptions::lock_for_tenant(conn, tenant_id, id).await? else {
                    return Ok(None);
                };
                if !sub.active {
                    return Err(WebhookError::Conflict(
                        "the subscription is disabled: recover it (or set active) first".into(),
                    ));
                }
                let ids: Vec<String> = el::table
                    .filter(el::tenant_id.eq(tenant_id))
                    .filter(el::occurred_at.ge(since))
                    .order(el::seq.asc())
                    .limit(REPLAY_LIMIT)
                    .select(el::id)
                    .load(conn)
                    .await?;
                let events = log::load(conn, &ids)
                    .await
                    .map_err(|e| WebhookError::Conflict(e.to_string()))?;
                let matching: Vec<_> = events
                    .into_iter()
                    .filter(|e| sub.wants(&e.envelope.event_type, &e.envelope.data))
                    .collect();
                let event_ids: Vec<String> =
                    matching.iter().map(|e| e.envelope.id.clone()).collect();
                let at = |e: &crate::events::RecordedEvent| {
                    DateTime::parse_from_rfc3339(&e.envelope.timestamp)
                        .map(|t| t.with_timezone(&Utc))
                        .unwrap_or(now)
                };
                let new_rows: Vec<_> = matching
                    .iter()
                    .map(|e| {
                        (
                            rows::subscription_id.eq(id.to_owned()),
                            rows::event_id.eq(e.envelope.id.clone()),
                            rows::tenant_id.eq(tenant_id.to_owned()),
                            rows::event_type.eq(e.envelope.event_type.clone()),
                            rows::event_at.eq(at(e)),
                            rows::body.eq(serde_json::to_string(&e.envelope).unwrap_or_default()),
                            rows::status.eq(status::PENDING),
                        )
                    })
                    .collect();
                // New rows (attempts 0), and finished ones reset to pending; in-flight ones
                // (pending with attempts) are left alone.
                let inserted: Vec<String> = diesel::insert_into(rows::table)
                    .values(new_rows)
                    .on_conflict_do_nothing()
                    .returning(rows::event_id)
                    .get_results(conn)
                    .await?;
                let reset: Vec<String> = diesel::update(
                    rows::table
                        .filter(rows::subscription_id.eq(id))
                        .filter(rows::event_id.eq_any(&event_ids))
                        .filter(rows::status.eq_any([
                            status::DELIVERED,
                            status::FAILED,
                            status::HELD,
                        ])),
                )
                .set((
                    rows::status.eq(status::PENDING),
                    rows::next_attempt_at.eq(Some(now)),
                ))
                .returning(rows::event_id)
                .get_results(conn)
                .await?;
                let owed: Vec<(String, i32)> = rows::table
                    .filter(rows::subscription_id.eq(id))
                    .filter(rows::event_id.eq_any(inserted.iter().chain(reset.iter())))
                    .order((rows::event_at.asc(), rows::event_id.asc()))
                    .select((rows::event_id, rows::attempts))
                    .load(conn)
                    .await?;
                let jobs: Vec<_> = owed
                    .iter()
                    .map(|(event, attempts)| {
                        DeliveryTask::first(id, event, attempts + 1).to_job(tenant_id, event)
                    })
                    .collect();
                // Before the commit, as recovery does: at worst duplicate jobs, never a pending
                // row without one.
                self.queues.enqueue_batch(&jobs).await?;
                Ok(Some(Replayed {
                    since,
                    event_ids: owed.into_iter().map(|(e, _)| e).collect(),
                }))
            }
            .scope_boxed()
        })
        .await
    }
}
