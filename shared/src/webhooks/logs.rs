//! The attempt log (`webhook_logs`): read side for `/api/events/webhook-logs`, and the retention
//! purge the scheduler runs (logs and finished deliveries older than the retention window).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use serde_json::Value;

use super::{WebhookError, deliveries::status};
use crate::db::{
    DbPool,
    schema::{webhook_deliveries as rows, webhook_logs as logs},
};

#[derive(Clone, Debug, Queryable, Selectable, Serialize, PartialEq)]
#[diesel(table_name = logs)]
pub struct WebhookLog {
    pub id: String,
    pub subscription_id: String,
    pub tenant_id: String,
    pub event_id: String,
    pub event_type: String,
    pub attempt: i32,
    pub url: String,
    pub request_headers: Value,
    pub status: Option<i32>,
    pub response_excerpt: Option<String>,
    pub duration_ms: i32,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Which logs to list: one tenant's, optionally one subscription's or one event's, newest
/// first, before the cursor `before` (a log id).
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    pub subscription_id: Option<String>,
    pub event_id: Option<String>,
    pub before: Option<String>,
    pub limit: i64,
}

pub async fn list(
    db: &DbPool,
    tenant_id: &str,
    query: &LogQuery,
) -> Result<Vec<WebhookLog>, WebhookError> {
    let mut conn = db.get().await?;
    let mut q = logs::table
        .filter(logs::tenant_id.eq(tenant_id))
        .select(WebhookLog::as_select())
        .order(logs::id.desc())
        .limit(query.limit.clamp(1, 500))
        .into_boxed();
    if let Some(sub) = &query.subscription_id {
        q = q.filter(logs::subscription_id.eq(sub));
    }
    if let Some(event) = &query.event_id {
        q = q.filter(logs::event_id.eq(event));
    }
    if let Some(before) = &query.before {
        q = q.filter(logs::id.lt(before));
    }
    Ok(q.load(&mut conn).await?)
}

/// Deletes logs and delivered deliveries older than `now - retention`, and undelivered ones too
/// (they are no longer recoverable); returns (logs, deliveries) deleted.
pub async fn purge_expired(
    db: &DbPool,
    retention: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<(usize, usize), WebhookError> {
    let cutoff = now - chrono::Duration::from_std(retention).unwrap_or_default();
    let mut conn = db.get().await?;
    let purged_logs = diesel::delete(logs::table.filter(logs::created_at.lt(cutoff)))
        .execute(&mut conn)
        .await?;
    let purged_rows = diesel::delete(
        rows::table
            .filter(rows::created_at.lt(cutoff))
            .filter(rows::status.ne(status::PENDING)),
    )
    .execute(&mut conn)
    .await?;
    Ok((purged_logs, purged_rows))
}
