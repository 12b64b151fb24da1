//! What a committed transaction must still make happen outside Postgres: publish its events and
//! enqueue its follow-up jobs — the transactional outbox.
//!
//! Inside the transaction, [`super::log::append`] stages each broadcast event in `event_outbox`
//! and [`stage_job`] stages each follow-up job in `job_outbox`; the caller collects both in
//! [`Effects`]. After the commit, [`Outbox::settle`] publishes and enqueues them, and the rows
//! are deleted shortly after, many settles' at once ([`super::forget`]). If sending fails (Redis
//! down) or the process dies first, the rows stay, and are sent by [`Outbox::flush_origin`] when the same job is retried, or by [`Outbox::relay_stale`], which
//! every worker and API process runs now and then ([`Outbox::relay_if_due`]). Nothing staged is
//! ever lost; it may be sent twice (event ids and the jobs' dedup keys make that harmless).

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use diesel::prelude::*;
use diesel_async::{
    AsyncConnection, AsyncPgConnection, RunQueryDsl, scoped_futures::ScopedFutureExt,
};

use super::{Broadcaster, EventError, RecordedEvent, forget::Forgetter, log};
use crate::{
    db::{
        DbPool,
        schema::{event_logs, event_outbox, job_outbox},
    },
    queue::{Job, Queues, enqueue::DEFAULT_DEDUP_WINDOW},
};

/// A follow-up job staged in the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct StagedJob {
    pub job: Job,
    /// Enqueued with enqueue-unless-duplicate under this key, so a re-send is a no-op.
    pub dedup_key: Option<String>,
}

/// Events and jobs of one committed transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effects {
    pub events: Vec<RecordedEvent>,
    pub jobs: Vec<StagedJob>,
}

impl Effects {
    pub fn extend(&mut self, other: Effects) {
        self.events.extend(other.events);
        self.jobs.extend(other.jobs);
    }
}

/// Stages `job` in the transaction `conn` is in.
pub async fn stage_job(
    conn: &mut AsyncPgConnection,
    origin: &str,
    staged: &StagedJob,
) -> Result<(), EventError> {
    let json = serde_json::to_value(&staged.job).unwrap_or_default();
    diesel::insert_into(job_outbox::table)
        .values((
            job_outbox::job_id.eq(staged.job.id.to_string()),
            job_outbox::origin.eq(origin),
            job_outbox::job.eq(json),
            job_outbox::dedup_key.eq(&staged.dedup_key),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// How often one process looks for stale outbox rows, and how old "stale" is.
const RELAY_EVERY: Duration = Duration::from_secs(5);
const STALE_AFTER: Duration = Duration::from_secs(10);
const RELAY_BATCH: i64 = 500;

/// Sends staged effects; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    db: DbPool,
    queues: Queues,
    broadcaster: Broadcaster,
    last_relay_ms: Arc<AtomicI64>,
    forgetter: Forgetter,
}

impl Outbox {
    pub fn new(db: DbPool, queues: Queues, broadcaster: Broadcaster) -> Self {
        Self {
            forgetter: Forgetter::new(db.clone(), super::forget::GATHER_FOR),
            db,
            queues,
            broadcaster,
            last_relay_ms: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Cleans up what went out `gather_for` after it went (default
    /// [`super::forget::GATHER_FOR`]); tests stretch it to hold rows that went out in place.
    pub fn cleaning_up_after(mut self, gather_for: Duration) -> Self {
        self.forgetter = Forgetter::new(self.db.clone(), gather_for);
        self
    }

    pub fn broadcaster(&self) -> &Broadcaster {
        &self.broadcaster
    }

    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    /// After the commit: publish, enqueue, and clear the outbox rows. Never fails — what could
    /// not be sent stays staged for a retry or the relay (logged by [`Self::send`]).
    pub async fn settle(&self, effects: Effects) {
        self.send(&effects.events, &effects.jobs).await;
    }

    /// Publishes `events` and enqueues `jobs`, then queues the outbox rows of what went out for
    /// deletion (both tables in one statement, shared with other settles). What could not be
    /// sent is logged and stays staged.
    async fn send(&self, events: &[RecordedEvent], jobs: &[StagedJob]) {
        let published = match self.publish(events).await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(error = %error, "events stay in the outbox for the relay");
                Vec::new()
            }
        };
        let enqueued = match self.enqueue(jobs).await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(error = %error, "follow-up jobs stay in the outbox for the relay");
                Vec::new()
            }
        };
        self.forgetter.forget(&published, &enqueued);
    }

    /// The ids of the broadcast events, once published.
    async fn publish(&self, events: &[RecordedEvent]) -> Result<Vec<String>, EventError> {
        let ids: Vec<String> = events
            .iter()
            .filter(|e| !e.channels.is_empty())
            .map(|e| e.envelope.id.clone())
            .collect();
        if !ids.is_empty() {
            self.broadcaster.publish(events).await?;
        }
        Ok(ids)
    }

    /// The ids of the jobs, once enqueued.
    async fn enqueue(&self, jobs: &[StagedJob]) -> Result<Vec<String>, EventError> {
        for staged in jobs {
            match &staged.dedup_key {
                Some(key) => {
                    self.queues
                        .enqueue_unless_duplicate(&staged.job, key, DEFAULT_DEDUP_WINDOW)
                        .await?;
                }
                None => {
                    self.queues.enqueue(&staged.job).await?;
                }
            }
        }
        Ok(jobs.iter().map(|s| s.job.id.to_string()).collect())
    }

    /// Deletes now the outbox rows of what already went out, which settles leave to a cleanup
    /// shortly after ([`super::forget`]). For shutdown (so that the relay of the next process
    /// does not send them again) and for tests that count outbox rows.
    pub async fn flush_forgotten(&self) -> Result<(), EventError> {
        self.forgetter.flush().await
    }

    /// Sends whatever `origin` (a job id) staged and did not get out: the retry of a job that
    /// crashed between its commit and its settle.
    pub async fn flush_origin(&self, origin: &str) -> Result<usize, EventError> {
        // Rows of what went out may still wait for their cleanup; they are not unsent.
        self.forgetter.flush().await?;
        let mut conn = self.db.get().await?;
        let event_ids = unsent_event_ids(&mut conn, origin).await?;
        let jobs = staged_jobs(&mut conn, JobFilter::Origin(origin)).await?;
        drop(conn);
        let n = event_ids.len() + jobs.len();
        let events = if event_ids.is_empty() {
            Vec::new()
        } else {
            let mut conn = self.db.get().await?;
            log::load(&mut conn, &event_ids).await?
        };
        self.send(&events, &jobs).await;
        Ok(n)
    }

    /// Sends outbox rows older than `older_than`, oldest first, locking them so that relays in
    /// other processes skip them. Returns how many were sent.
    pub async fn relay_stale(&self, older_than: Duration, limit: i64) -> Result<usize, EventError> {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::seconds(10));
        let mut conn = self.db.get().await?;
        let broadcaster = self.broadcaster.clone();
        let events = conn
            .transaction::<usize, EventError, _>(|conn| {
                async move {
                    let ids: Vec<String> = event_outbox::table
                        .filter(event_outbox::created_at.lt(cutoff))
                        .order(event_outbox::created_at.asc())
                        .limit(limit)
                        .select(event_outbox::event_id)
                        .for_update()
                        .skip_locked()
                        .load(conn)
                        .await?;
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    // A row whose event retention already pruned loads nothing: it is
                    // deleted with the rest, unsent (the outbox has no key to the log).
                    let events = log::load(conn, &ids).await?;
                    if let Err(error) = broadcaster.publish(&events).await {
                        diesel::update(
                            event_outbox::table.filter(event_outbox::event_id.eq_any(&ids)),
                        )
                        .set((
                            event_outbox::attempts.eq(event_outbox::attempts + 1),
                            event_outbox::last_error.eq(error.to_string()),
                        ))
                        .execute(conn)
                        .await?;
                        return Ok(0);
                    }
                    diesel::delete(event_outbox::table.filter(event_outbox::event_id.eq_any(&ids)))
                        .execute(conn)
                        .await?;
                    Ok(events.len())
                }
                .scope_boxed()
            })
            .await?;
        let jobs = staged_jobs(&mut conn, JobFilter::OlderThan(cutoff)).await?;
        drop(conn);
        let n = jobs.len();
        self.send(&[], &jobs).await;
        if n > 0 {
            // `worker admin relay-outbox` exits right after: clean up now.
            self.forgetter.flush().await?;
        }
        if events + n > 0 {
            tracing::info!(events, jobs = n, "relayed stale outbox rows");
        }
        Ok(events + n)
    }

    /// Runs [`Self::relay_stale`] if this process has not in the last few seconds: called after
    /// every job and API write, so stale rows go out as long as anything runs at all.
    pub async fn relay_if_due(&self) {
        let now = chrono::Utc::now().timestamp_millis();
        let last = AtomicI64::load(&self.last_relay_ms, Ordering::Relaxed);
        if now - last < RELAY_EVERY.as_millis() as i64
            || self
                .last_relay_ms
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Err(error) = self.relay_stale(STALE_AFTER, RELAY_BATCH).await {
            tracing::warn!(error = %error, "outbox relay failed");
        }
    }
}

/// The unsent broadcast events `origin` (a job or request id) caused; read through
/// `event_logs_causation` (migration 000014), not the whole log.
pub async fn unsent_event_ids(
    conn: &mut AsyncPgConnection,
    origin: &str,
) -> Result<Vec<String>, EventError> {
    Ok(event_outbox::table
        .inner_join(event_logs::table)
        .filter(event_logs::causation_id.eq(origin))
        .select(event_outbox::event_id)
        .load(conn)
        .await?)
}

/// Which staged jobs to read.
enum JobFilter<'a> {
    Origin(&'a str),
    OlderThan(chrono::DateTime<chrono::Utc>),
}

async fn staged_jobs(
    conn: &mut AsyncPgConnection,
    filter: JobFilter<'_>,
) -> Result<Vec<StagedJob>, EventError> {
    let query = job_outbox::table
        .order(job_outbox::created_at.asc())
        .limit(RELAY_BATCH)
        .select((job_outbox::job, job_outbox::dedup_key))
        .into_boxed();
    let query = match filter {
        JobFilter::Origin(origin) => query.filter(job_outbox::origin.eq(origin.to_owned())),
        JobFilter::OlderThan(cutoff) => query.filter(job_outbox::created_at.lt(cutoff)),
    };
    let rows: Vec<(serde_json::Value, Option<String>)> = query.load(conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(json, dedup_key)| {
            let job = serde_json::from_value(json).ok()?;
            Some(StagedJob { job, dedup_key })
        })
        .collect())
}
