//! Reading and removing failed jobs by filter: what `worker failed list|forget|flush`, the
//! scheduler's retention pruning and the `/api/failed-jobs` endpoints share.
//!
//! Every function takes a [`FailedFilter`] (queue, kind, time window) and builds one SQL
//! predicate from it, so "what `list` shows" and "what `flush` deletes" can never disagree.
//! Deletes of many rows go in bounded batches so a large flush never holds a long lock.

use chrono::{DateTime, Utc};
use diesel::{dsl::count_star, pg::Pg, prelude::*};
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};

use super::{FailedJob, FailedJobs};
use crate::db::{DbError, schema::failed_jobs};

/// Which failed jobs an operation applies to; every field narrows, none set means all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedFilter {
    pub queue: Option<String>,
    pub kind: Option<String>,
    /// Failed at or after this moment.
    pub since: Option<DateTime<Utc>>,
    /// Failed strictly before this moment (`flush --older-than`, retention).
    pub before: Option<DateTime<Utc>>,
}

impl FailedFilter {
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    pub fn before(mut self, before: DateTime<Utc>) -> Self {
        self.before = Some(before);
        self
    }

    pub fn since(mut self, since: DateTime<Utc>) -> Self {
        self.since = Some(since);
        self
    }
}

/// What `forget_many` did with the ids it was given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ForgetSummary {
    pub forgotten: Vec<String>,
    pub not_found: Vec<String>,
}

/// Failed jobs per queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueCount {
    pub queue: String,
    pub failed: i64,
}

/// The matching rows as a boxed query (boxed queries are `Send`, so callers' futures are too).
fn matching<'a>(filter: &FailedFilter) -> failed_jobs::BoxedQuery<'a, Pg> {
    let mut query = failed_jobs::table.into_boxed();
    if let Some(queue) = &filter.queue {
        query = query.filter(failed_jobs::queue.eq(queue.clone()));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(failed_jobs::kind.eq(kind.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(failed_jobs::failed_at.ge(since));
    }
    if let Some(before) = filter.before {
        query = query.filter(failed_jobs::failed_at.lt(before));
    }
    query
}

/// Rows deleted per statement by `flush` and `prune`.
const DELETE_BATCH: i64 = 5_000;

impl FailedJobs {
    /// Matching rows, newest first (ties broken by id so pages are stable).
    pub async fn search(
        &self,
        filter: &FailedFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<FailedJob>, DbError> {
        let mut conn = self.db.get().await?;
        Ok(matching(filter)
            .select(FailedJob::as_select())
            .order((failed_jobs::failed_at.desc(), failed_jobs::id.desc()))
            .limit(limit)
            .offset(offset)
            .load(&mut conn)
            .await?)
    }

    pub async fn count_matching(&self, filter: &FailedFilter) -> Result<i64, DbError> {
        let mut conn = self.db.get().await?;
        Ok(matching(filter)
            .select(count_star())
            .get_result(&mut conn)
            .await?)
    }

    /// Ids of matching rows, oldest failure first: the snapshot `retry --all` works through.
    pub async fn matching_ids(&self, filter: &FailedFilter) -> Result<Vec<String>, DbError> {
        let mut conn = self.db.get().await?;
        Ok(matching(filter)
            .select(failed_jobs::id)
            .order((failed_jobs::failed_at.asc(), failed_jobs::id.asc()))
            .load(&mut conn)
            .await?)
    }

    /// Failed jobs per queue, for queues that have any.
    pub async fn count_by_queue(&self) -> Result<Vec<QueueCount>, DbError> {
        let mut conn = self.db.get().await?;
        let rows: Vec<(String, i64)> = failed_jobs::table
            .group_by(failed_jobs::queue)
            .select((failed_jobs::queue, count_star()))
            .order(failed_jobs::queue.asc())
            .load(&mut conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(queue, failed)| QueueCount { queue, failed })
            .collect())
    }

    /// Deletes the rows with these ids; reports which ids had no row.
    pub async fn forget_many(&self, ids: &[String]) -> Result<ForgetSummary, DbError> {
        let mut conn = self.db.get().await?;
        let forgotten: Vec<String> =
            diesel::delete(failed_jobs::table.filter(failed_jobs::id.eq_any(ids)))
                .returning(failed_jobs::id)
                .get_results(&mut conn)
                .await?;
        let not_found = ids
            .iter()
            .filter(|id| !forgotten.contains(id))
            .cloned()
            .collect();
        Ok(ForgetSummary {
            forgotten,
            not_found,
        })
    }

    /// Deletes every matching row, in batches; returns how many.
    pub async fn flush(&self, filter: &FailedFilter) -> Result<u64, DbError> {
        let mut conn = self.db.get().await?;
        let mut deleted = 0u64;
        loop {
            let batch = matching(filter).select(failed_jobs::id).limit(DELETE_BATCH);
            let n = diesel::delete(failed_jobs::table.filter(failed_jobs::id.eq_any(batch)))
                .execute(&mut conn)
                .await?;
            deleted += n as u64;
            if (n as i64) < DELETE_BATCH {
                return Ok(deleted);
            }
        }
    }

    /// Retention: deletes rows that failed before `cutoff`; returns how many.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> Result<u64, DbError> {
        self.flush(&FailedFilter::default().before(cutoff)).await
    }
}
