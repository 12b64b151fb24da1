//! Deleting the outbox rows of what went out, many settles to one statement (group commit).
//!
//! Every settled transaction ends with this cleanup. One by one, under load, that was a pool
//! checkout, a statement and a commit per job. Here concurrent callers share: a caller that finds
//! no cleanup running runs one with everything queued so far; callers arriving meanwhile queue
//! and are served by the next one. There is no timer: a quiet process cleans up at once, alone.
//! Each caller still returns only after its own rows were deleted (or the delete failed), so
//! [`super::Outbox::settle`] means what it meant. A cleanup that never happens is harmless — the
//! relay sends the rows again, and subscribers may see an event twice, never zero times.

use std::sync::{Arc, Mutex, PoisonError};

use diesel::{
    QueryResult,
    pg::Pg,
    query_builder::{AstPass, QueryFragment, QueryId},
    sql_types::{Array, Text},
};
use diesel_async::RunQueryDsl;
use tokio::sync::oneshot;

use super::EventError;
use crate::db::DbPool;

/// How a cleanup ended, told to every caller whose rows it held.
type Outcome = Result<(), String>;

#[derive(Default)]
struct Queued {
    event_ids: Vec<String>,
    job_ids: Vec<String>,
    waiting: Vec<oneshot::Sender<Outcome>>,
}

/// Cheap to clone; clones share one queue.
#[derive(Clone)]
pub(super) struct Forgetter {
    db: DbPool,
    queued: Arc<Mutex<Queued>>,
    /// Held while a cleanup runs.
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Forgetter {
    pub(super) fn new(db: DbPool) -> Self {
        Self {
            db,
            queued: Arc::default(),
            running: Arc::default(),
        }
    }

    /// Deletes the outbox rows of `event_ids` and `job_ids`, together with whatever other
    /// callers queued meanwhile.
    pub(super) async fn forget(
        &self,
        event_ids: &[String],
        job_ids: &[String],
    ) -> Result<(), EventError> {
        if event_ids.is_empty() && job_ids.is_empty() {
            return Ok(());
        }
        let (done, mut outcome) = oneshot::channel();
        {
            let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
            queued.event_ids.extend_from_slice(event_ids);
            queued.job_ids.extend_from_slice(job_ids);
            queued.waiting.push(done);
        }
        loop {
            let running = tokio::select! {
                biased;
                told = &mut outcome => return settled(told),
                running = self.running.lock() => running,
            };
            // No cleanup runs now; the one that just ended may have held our rows.
            match outcome.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => {}
                told => return settled(told.map_err(|_| ())),
            }
            let batch =
                std::mem::take(&mut *self.queued.lock().unwrap_or_else(PoisonError::into_inner));
            if batch.waiting.is_empty() {
                // Ours is in a cleanup whose caller was cancelled mid-way; it still answers.
                drop(running);
                return settled((&mut outcome).await);
            }
            // Spawned, so that a caller cancelled mid-cleanup (a job's timeout) does not leave the
            // others it carries without an answer.
            let db = self.db.clone();
            let cleanup = tokio::spawn(async move {
                let result = delete(&db, &batch.event_ids, &batch.job_ids)
                    .await
                    .map_err(|e| e.to_string());
                for waiting in batch.waiting {
                    let _ = waiting.send(result.clone());
                }
            });
            let _ = cleanup.await;
            drop(running);
        }
    }
}

fn settled<E>(told: Result<Outcome, E>) -> Result<(), EventError> {
    match told {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(EventError::Cleanup(error)),
        Err(_) => Err(EventError::Cleanup("the cleanup was abandoned".into())),
    }
}

async fn delete(db: &DbPool, event_ids: &[String], job_ids: &[String]) -> Result<(), EventError> {
    let mut conn = db.get().await?;
    // A function (migration 000011_outbox_forget_async, 000015): Postgres keeps its plans, and it
    // commits without waiting for the WAL flush. It must run alone in its transaction: autocommit
    // here.
    ForgetCall { event_ids, job_ids }.execute(&mut conn).await?;
    Ok(())
}

/// `SELECT outbox_forget_async($1, $2)`, built by hand so that diesel keeps it prepared (it
/// never keeps a `diesel::sql_query`), keyed by its SQL text.
struct ForgetCall<'a> {
    event_ids: &'a [String],
    job_ids: &'a [String],
}

impl QueryFragment<Pg> for ForgetCall<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT outbox_forget_async(");
        out.push_bind_param::<Array<Text>, _>(self.event_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(self.job_ids)?;
        out.push_sql(")");
        Ok(())
    }
}

impl QueryId for ForgetCall<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}
