//! The failed-jobs store (Postgres `failed_jobs`): the dead set on-call engineers list and retry.
//!
//! `record` is idempotent by job id, so the queue can write the row first and ack second: a crash
//! in between re-runs the move and finds the row already there.
//!
//! The operator's side lives in two submodules, written as library functions so that the `worker
//! failed` CLI and the ingress `/api/failed-jobs` endpoints share one implementation:
//! [`query`] (filtered listing, counts, forget, flush and retention pruning) and [`retry`]
//! (re-enqueue with attempts reset, removing each row only once its job is back on a stream).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{Job, QueueError, consume::BadEnvelope};
use crate::db::{DbError, DbPool, schema::failed_jobs};

pub mod query;
pub mod retry;

pub use query::{FailedFilter, ForgetSummary, QueueCount};
pub use retry::{RetrySelection, RetrySummary, Skipped};

#[derive(Clone, Debug, Queryable, Selectable, Insertable, PartialEq, serde::Serialize)]
#[diesel(table_name = failed_jobs)]
pub struct FailedJob {
    pub id: String,
    pub queue: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub error: String,
    pub attempts: i32,
    pub correlation_id: String,
    pub tenant_id: Option<String>,
    pub failed_at: DateTime<Utc>,
}

impl FailedJob {
    pub fn from_job(job: &Job, error: &str) -> Self {
        Self {
            id: job.id.to_string(),
            queue: job.queue.to_string(),
            kind: job.kind.clone(),
            // The whole envelope, so a retry re-enqueues exactly what failed.
            payload: serde_json::to_value(job).unwrap_or_default(),
            error: error.to_owned(),
            attempts: job.attempt as i32,
            correlation_id: job.correlation_id.clone(),
            tenant_id: job.tenant_id.clone(),
            failed_at: Utc::now(),
        }
    }

    /// A row for an entry whose envelope never decoded, keyed by its stream entry id so a second
    /// write of the same entry is still idempotent.
    pub fn from_bad_envelope(queue: &str, entry_id: &str, bad: &BadEnvelope) -> Self {
        Self {
            id: format!("entry-{entry_id}"),
            queue: queue.to_owned(),
            kind: "(undecodable)".into(),
            payload: serde_json::json!({ "raw": bad.raw }),
            error: bad.reason.clone(),
            attempts: 0,
            correlation_id: format!("entry-{entry_id}"),
            tenant_id: None,
            failed_at: Utc::now(),
        }
    }

    /// The stored envelope as it failed (attempt count and last error kept), for `show`.
    pub fn envelope(&self) -> Option<Job> {
        serde_json::from_value(self.payload.clone()).ok()
    }

    /// The first line of the error, for one-line listings.
    pub fn error_summary(&self) -> &str {
        self.error.lines().next().unwrap_or("")
    }

    /// The envelope to re-enqueue, with attempts reset.
    pub fn job(&self) -> Option<Job> {
        let mut job: Job = serde_json::from_value(self.payload.clone()).ok()?;
        job.attempt = 1;
        job.last_error = None;
        Some(job)
    }
}

#[derive(Clone)]
pub struct FailedJobs {
    db: DbPool,
}

/// `row` with every U+0000 replaced by U+FFFD, in its text columns and its payload's strings
/// and keys.
fn storable(row: &FailedJob) -> FailedJob {
    use crate::db::without_nul as text;
    fn json(value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(text(s)),
            Value::Array(items) => Value::Array(items.iter().map(json).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (text(k), json(v))).collect())
            }
            other => other.clone(),
        }
    }
    FailedJob {
        id: text(&row.id),
        queue: text(&row.queue),
        kind: text(&row.kind),
        payload: json(&row.payload),
        error: text(&row.error),
        correlation_id: text(&row.correlation_id),
        tenant_id: row.tenant_id.as_deref().map(text),
        ..row.clone()
    }
}

impl FailedJobs {
    pub fn new(db: DbPool) -> Self {
        Self { db }
    }

    /// Inserts the row unless a row with that id exists. A U+0000 character, which Postgres
    /// cannot store (ingress refuses it, but a job may come from elsewhere), is written as
    /// U+FFFD: a failure that could never be recorded would keep its job running forever.
    pub async fn record(&self, row: &FailedJob) -> Result<(), QueueError> {
        let row = storable(row);
        let mut conn = self.db.get().await.map_err(DbError::from)?;
        diesel::insert_into(failed_jobs::table)
            .values(&row)
            .on_conflict(failed_jobs::id)
            .do_nothing()
            .execute(&mut conn)
            .await
            .map_err(DbError::from)?;
        Ok(())
    }

    pub async fn find(&self, id: &str) -> Result<Option<FailedJob>, DbError> {
        let mut conn = self.db.get().await?;
        Ok(failed_jobs::table
            .find(id)
            .select(FailedJob::as_select())
            .first(&mut conn)
            .await
            .optional()?)
    }

    /// Newest first, optionally for one queue.
    pub async fn list(&self, queue: Option<&str>, limit: i64) -> Result<Vec<FailedJob>, DbError> {
        let mut conn = self.db.get().await?;
        let mut query = failed_jobs::table
            .select(FailedJob::as_select())
            .order(failed_jobs::failed_at.desc())
            .limit(limit)
            .into_boxed();
        if let Some(queue) = queue {
            query = query.filter(failed_jobs::queue.eq(queue.to_owned()));
        }
        Ok(query.load(&mut conn).await?)
    }

    pub async fn count(&self, queue: Option<&str>) -> Result<i64, DbError> {
        let mut conn = self.db.get().await?;
        let mut query = failed_jobs::table.count().into_boxed();
        if let Some(queue) = queue {
            query = query.filter(failed_jobs::queue.eq(queue.to_owned()));
        }
        Ok(query.get_result(&mut conn).await?)
    }

    pub async fn forget(&self, id: &str) -> Result<bool, DbError> {
        let mut conn = self.db.get().await?;
        let n = diesel::delete(failed_jobs::table.find(id))
            .execute(&mut conn)
            .await?;
        Ok(n == 1)
    }
}
