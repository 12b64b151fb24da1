//! What is owed to each subscription: one `webhook_deliveries` row per (subscription, event),
//! and the job payload that asks for one attempt at it.
//!
//! The row is the authority on a delivery's state (`pending`, `held`, `delivered`, `failed`)
//! and on how many attempts were made; a job whose attempt number is not ahead of the row's is a
//! duplicate (a redelivered or reclaimed copy) and does nothing.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::{
    db::schema::webhook_deliveries as rows,
    queue::{Job, QueueName},
};

/// The job kind that delivers one event to one subscription.
pub const DELIVER_KIND: &str = "webhook.deliver";

/// The queue deliveries run on.
pub const QUEUE: &str = "webhooks";

pub mod status {
    pub const PENDING: &str = "pending";
    pub const HELD: &str = "held";
    pub const DELIVERED: &str = "delivered";
    pub const FAILED: &str = "failed";
}

#[derive(Clone, Debug, Queryable, Selectable, Serialize, PartialEq)]
#[diesel(table_name = rows)]
pub struct DeliveryRow {
    pub subscription_id: String,
    pub event_id: String,
    pub tenant_id: String,
    pub event_type: String,
    pub event_at: DateTime<Utc>,
    #[serde(skip)]
    pub body: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A `webhook.deliver` job's payload: attempt `attempt` (counted over the delivery's whole life)
/// at one event for one subscription. `retry` is the index into the subscription's schedule of
/// the delay to wait if this attempt fails (0 for the first try of a run; a recovery starts a
/// new run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryTask {
    pub v: u8,
    pub subscription_id: String,
    pub event_id: String,
    pub attempt: i32,
    pub retry: u32,
}

impl DeliveryTask {
    pub fn first(subscription_id: &str, event_id: &str, attempt: i32) -> Self {
        Self {
            v: 1,
            subscription_id: subscription_id.to_owned(),
            event_id: event_id.to_owned(),
            attempt,
            retry: 0,
        }
    }

    pub fn next(&self) -> Self {
        Self {
            attempt: self.attempt + 1,
            retry: self.retry + 1,
            ..self.clone()
        }
    }

    pub fn from_job(job: &Job) -> Result<Self, String> {
        serde_json::from_value(job.payload.clone())
            .map_err(|e| format!("webhook.deliver payload does not decode: {e}"))
    }

    /// A fresh job for this task. The queue's own retries (after an infrastructure error) get
    /// the `webhooks` policy; the delivery schedule is applied by the handler.
    pub fn to_job(&self, tenant_id: &str, correlation_id: &str) -> Job {
        // "webhooks" is a valid queue name, so this cannot fail.
        let queue = QueueName::new(QUEUE).unwrap_or_else(|_| unreachable!("valid queue name"));
        let payload = serde_json::to_value(self).unwrap_or_default();
        Job::new(queue, DELIVER_KIND, payload)
            .with_tenant(tenant_id)
            .with_correlation_id(correlation_id)
    }
}

pub(crate) async fn load(
    conn: &mut AsyncPgConnection,
    subscription_id: &str,
    event_id: &str,
) -> Result<Option<DeliveryRow>, diesel::result::Error> {
    rows::table
        .find((subscription_id, event_id))
        .select(DeliveryRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub(crate) async fn lock(
    conn: &mut AsyncPgConnection,
    subscription_id: &str,
    event_id: &str,
) -> Result<Option<DeliveryRow>, diesel::result::Error> {
    rows::table
        .find((subscription_id, event_id))
        .for_update()
        .select(DeliveryRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A pending delivery of a disabled subscription is kept, not sent.
pub(crate) async fn hold(
    conn: &mut AsyncPgConnection,
    subscription_id: &str,
    event_id: &str,
) -> Result<(), diesel::result::Error> {
    diesel::update(
        rows::table
            .find((subscription_id, event_id))
            .filter(rows::status.eq(status::PENDING)),
    )
    .set((
        rows::status.eq(status::HELD),
        rows::next_attempt_at.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Every pending delivery of a subscription that was just disabled.
pub(crate) async fn hold_all(
    conn: &mut AsyncPgConnection,
    subscription_id: &str,
) -> Result<usize, diesel::result::Error> {
    diesel::update(
        rows::table
            .filter(rows::subscription_id.eq(subscription_id))
            .filter(rows::status.eq(status::PENDING)),
    )
    .set((
        rows::status.eq(status::HELD),
        rows::next_attempt_at.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)
    .await
}

/// The deliveries of one subscription, oldest event first (for operators and tests).
pub async fn for_subscription(
    db: &crate::db::DbPool,
    subscription_id: &str,
) -> Result<Vec<DeliveryRow>, super::WebhookError> {
    let mut conn = db.get().await?;
    Ok(rows::table
        .filter(rows::subscription_id.eq(subscription_id))
        .order((rows::event_at.asc(), rows::event_id.asc()))
        .select(DeliveryRow::as_select())
        .load(&mut conn)
        .await?)
}
