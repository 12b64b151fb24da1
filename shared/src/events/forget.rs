//! Deleting the outbox rows of what went out: gathered for a moment, then one statement for all.
//!
//! Every settled transaction ends with this cleanup. One by one, under load, that was a pool
//! checkout, a function call and a commit per job — ~10 % of Postgres's CPU per message at
//! 600/s, where concurrent settles rarely overlapped (BENCHMARKS.md, pipeline, "Kept prepared").
//! Now a settle only queues its ids; the first id queued after a cleanup schedules the next one
//! [`GATHER_FOR`] later, and that cleanup deletes everything queued by then.
//!
//! A row deleted late, or never (a crash before the cleanup, a failed delete), is harmless: the
//! relay sends rows older than ten seconds again, and subscribers may see an event twice, never
//! zero times. What must not see a row that went out is a rerun of the same job looking for what
//! its first attempt left unsent, so [`Forgetter::flush`] runs first there
//! ([`super::Outbox::flush_origin`]), and at shutdown, so that a deploy does not re-send the
//! last moment's events.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use diesel::sql_types::{Array, Text};
use diesel_async::RunQueryDsl;

use super::EventError;
use crate::db::{DbPool, keep_prepared};

/// How long ids gather before their cleanup: at 1,000 messages/s, some twenty settles share it.
pub const GATHER_FOR: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Queued {
    event_ids: Vec<String>,
    job_ids: Vec<String>,
    /// A cleanup is scheduled and has not taken the queue yet.
    scheduled: bool,
}

/// Cheap to clone; clones share one queue.
#[derive(Clone)]
pub(super) struct Forgetter {
    db: DbPool,
    gather_for: Duration,
    queued: Arc<Mutex<Queued>>,
    /// Held while a cleanup deletes, so that [`Forgetter::flush`] returns only after every
    /// delete begun before it ended.
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Forgetter {
    pub(super) fn new(db: DbPool, gather_for: Duration) -> Self {
        Self {
            db,
            gather_for,
            queued: Arc::default(),
            running: Arc::default(),
        }
    }

    /// Queues the outbox rows of `event_ids` and `job_ids` for deletion, within `gather_for`.
    pub(super) fn forget(&self, event_ids: &[String], job_ids: &[String]) {
        if event_ids.is_empty() && job_ids.is_empty() {
            return;
        }
        let schedule = {
            let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
            queued.event_ids.extend_from_slice(event_ids);
            queued.job_ids.extend_from_slice(job_ids);
            !std::mem::replace(&mut queued.scheduled, true)
        };
        if schedule {
            let forgetter = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(forgetter.gather_for).await;
                if let Err(error) = forgetter.flush().await {
                    tracing::warn!(error = %error, "outbox cleanup failed; the relay will re-send those rows");
                }
            });
        }
    }

    /// Deletes everything queued so far, now, after any cleanup already under way.
    pub(super) async fn flush(&self) -> Result<(), EventError> {
        let _running = self.running.lock().await;
        let (event_ids, job_ids) = {
            let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
            // Ids queued from here on schedule a cleanup of their own.
            queued.scheduled = false;
            (
                std::mem::take(&mut queued.event_ids),
                std::mem::take(&mut queued.job_ids),
            )
        };
        if event_ids.is_empty() && job_ids.is_empty() {
            return Ok(());
        }
        delete(&self.db, &event_ids, &job_ids).await
    }
}

async fn delete(db: &DbPool, event_ids: &[String], job_ids: &[String]) -> Result<(), EventError> {
    let mut conn = db.get().await?;
    // A function (migration 000011_outbox_forget_async, 000015): Postgres keeps its plans, and it
    // commits without waiting for the WAL flush. It must run alone in its transaction: autocommit
    // here. Kept prepared: diesel never keeps a `sql_query` prepared.
    keep_prepared(
        diesel::sql_query("SELECT outbox_forget_async($1, $2)")
            .bind::<Array<Text>, _>(event_ids)
            .bind::<Array<Text>, _>(job_ids),
    )
    .execute(&mut conn)
    .await?;
    Ok(())
}
