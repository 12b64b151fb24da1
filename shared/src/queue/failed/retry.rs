//! Retrying failed jobs: put each stored envelope back on its queue's stream with attempts reset,
//! and remove its row — shared by `worker failed retry` and the `/api/failed-jobs` endpoints.
//!
//! Why the row is deleted inside a transaction that commits only after XADD returned: a job must
//! never be lost (DESIGN.md §3, invariant 3). Deleting after the enqueue in a separate step is not
//! enough: a fast worker could run the retried job, fail it again and find the old row still there
//! (`record` is insert-or-nothing), and the late delete would then remove the only trace of the
//! new failure. With the row deleted and locked until the enqueue is done, that worker's insert
//! waits for our commit and lands after it. If the enqueue fails, the transaction rolls back and
//! the rows stay. If the commit fails after the enqueue, the job is on the stream *and* still in
//! failed jobs: a later retry enqueues it again under the same job id, and handlers are idempotent
//! by job id, so the duplicate is absorbed — never a lost job.
//!
//! Rows are taken in batches, and `--all` works through a snapshot of the matching ids taken at the
//! start, so jobs that fail again while the retry runs are not retried twice in one run.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl, scoped_futures::ScopedFutureExt};
use serde::Serialize;

use super::{FailedFilter, FailedJob, FailedJobs};
use crate::{
    db::{DbError, schema::failed_jobs},
    queue::{Job, QueueError, Queues},
};

/// Which failed jobs to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetrySelection {
    /// These ids; ids without a row are reported in [`RetrySummary::not_found`].
    Ids(Vec<String>),
    /// Every row matching the filter when the retry starts.
    Matching(FailedFilter),
}

/// A selected job that was not retried, and why. Its row stays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub id: String,
    pub reason: String,
}

/// What a retry did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetrySummary {
    pub dry_run: bool,
    /// Ids considered: those given, or those matching the filter at the start.
    pub selected: u64,
    /// Jobs back on their streams with their rows removed (in a dry run: that would be).
    pub retried: u64,
    /// `retried` per queue.
    pub by_queue: BTreeMap<String, u64>,
    /// Rows whose envelope does not decode: there is nothing to re-enqueue.
    pub skipped: Vec<Skipped>,
    /// Ids given that have no row.
    pub not_found: Vec<String>,
    /// Rows that matched the filter but were gone by the time their batch ran (retried or
    /// forgotten by someone else meanwhile).
    pub vanished: u64,
}

/// Rows per transaction: large enough to pipeline the XADDs, small enough to hold locks briefly.
const RETRY_BATCH: usize = 500;

/// Why one batch did not commit.
enum BatchError {
    Db(diesel::result::Error),
    Queue(QueueError),
}

impl From<diesel::result::Error> for BatchError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

impl From<BatchError> for QueueError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::Db(e) => QueueError::Database(DbError::Query(e)),
            BatchError::Queue(e) => e,
        }
    }
}

/// The rows of one batch, split into jobs to enqueue and rows to leave alone.
struct Plan {
    jobs: Vec<Job>,
    skipped: Vec<Skipped>,
    found: Vec<String>,
}

fn plan(rows: Vec<FailedJob>) -> Plan {
    let mut plan = Plan {
        jobs: Vec::with_capacity(rows.len()),
        skipped: Vec::new(),
        found: Vec::with_capacity(rows.len()),
    };
    for row in rows {
        plan.found.push(row.id.clone());
        match row.job() {
            Some(job) => plan.jobs.push(job),
            None => plan.skipped.push(Skipped {
                id: row.id,
                reason: "the stored envelope does not decode as a job".into(),
            }),
        }
    }
    plan
}

impl FailedJobs {
    /// Retries the selection. `progress` is called after each batch with the number of ids that
    /// batch covered, so a caller can drive a progress bar; nothing changes when `dry_run`.
    pub async fn retry(
        &self,
        queues: &Queues,
        selection: &RetrySelection,
        dry_run: bool,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<RetrySummary, QueueError> {
        let (ids, explicit) = match selection {
            RetrySelection::Ids(ids) => (unique(ids), true),
            RetrySelection::Matching(filter) => (self.matching_ids(filter).await?, false),
        };
        let mut summary = RetrySummary {
            dry_run,
            selected: ids.len() as u64,
            ..Default::default()
        };
        for chunk in ids.chunks(RETRY_BATCH) {
            let plan = if dry_run {
                plan(self.rows(chunk).await?)
            } else {
                self.retry_batch(queues, chunk).await?
            };
            summary.add(chunk, plan, explicit);
            progress(chunk.len() as u64);
        }
        Ok(summary)
    }

    async fn rows(&self, ids: &[String]) -> Result<Vec<FailedJob>, DbError> {
        let mut conn = self.db.get().await?;
        Ok(failed_jobs::table
            .filter(failed_jobs::id.eq_any(ids))
            .select(FailedJob::as_select())
            .load(&mut conn)
            .await?)
    }

    /// One transaction: lock and delete the batch's decodable rows, enqueue their jobs, commit.
    async fn retry_batch(&self, queues: &Queues, ids: &[String]) -> Result<Plan, QueueError> {
        let mut conn = self.db.get().await.map_err(DbError::from)?;
        let plan = conn
            .transaction::<_, BatchError, _>(|conn| {
                async move {
                    let rows = failed_jobs::table
                        .filter(failed_jobs::id.eq_any(ids))
                        .select(FailedJob::as_select())
                        .for_update()
                        .load(conn)
                        .await?;
                    let plan = plan(rows);
                    let retried: Vec<String> = plan.jobs.iter().map(|j| j.id.to_string()).collect();
                    diesel::delete(failed_jobs::table.filter(failed_jobs::id.eq_any(&retried)))
                        .execute(conn)
                        .await?;
                    queues
                        .enqueue_batch(&plan.jobs)
                        .await
                        .map_err(BatchError::Queue)?;
                    Ok(plan)
                }
                .scope_boxed()
            })
            .await?;
        Ok(plan)
    }
}

impl RetrySummary {
    fn add(&mut self, chunk: &[String], plan: Plan, explicit: bool) {
        for job in &plan.jobs {
            *self.by_queue.entry(job.queue.to_string()).or_default() += 1;
        }
        self.retried += plan.jobs.len() as u64;
        self.skipped.extend(plan.skipped);
        let missing = chunk.iter().filter(|id| !plan.found.contains(id));
        if explicit {
            self.not_found.extend(missing.cloned());
        } else {
            self.vanished += missing.count() as u64;
        }
    }
}

/// The ids in their given order, each once.
fn unique(ids: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().filter(|id| seen.insert(*id)).cloned().collect()
}
