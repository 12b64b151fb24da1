//! Paused inboxes for operators: which inboxes have their deliveries held, and resuming one.
//! The ingress API (`POST /api/inboxes/{id}/deliveries/resume`) and the worker CLI
//! (`worker inboxes paused|resume`) both call these functions.
//!
//! A pause has two records: the durable one (`inbox_outbound.paused_at`, written with the
//! `inbox.delivery_paused` event) and the Redis flag the handler checks first. Resume clears the
//! durable record first, then the flag — in that order, so a job running in between finds the
//! flag and is held rather than re-flagging the inbox from a record about to go — and then makes
//! the inbox's held jobs (parked in the `deliveries` delayed set for [`PAUSED_RECHECK`]) due now
//! and promotes them, instead of leaving them for up to a recheck. A job parked in the instant
//! between the flag's removal and the release waits out its recheck; it still goes out.
//!
//! [`PAUSED_RECHECK`]: super::handler::PAUSED_RECHECK

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{handler::DELIVERY_SEND, keys};
use crate::{
    conversation::delivery::DELIVERIES_QUEUE,
    db::{DbError, DbPool, schema::inboxes},
    inboxes::outbound,
    queue::{Job, QueueError, QueueName, Queues},
};

/// Delayed-set members read per ZSCAN round.
const SCAN_BATCH: usize = 500;

/// Why a resume did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("no inbox {0}")]
    UnknownInbox(String),
    #[error("inbox {0} is not paused")]
    NotPaused(String),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("redis: {0}")]
    Redis(#[from] QueueError),
}

impl From<redis::RedisError> for ResumeError {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e.into())
    }
}

/// A paused inbox, for `worker inboxes paused`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PausedInbox {
    pub inbox_id: String,
    pub tenant_id: String,
    pub kind: String,
    pub name: String,
    pub since: DateTime<Utc>,
    pub reason: String,
    /// Its deliveries held in the delayed set.
    pub held: u64,
}

/// What a resume cleared and released.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Resumed {
    pub inbox_id: String,
    /// When the durable record says it was paused (`None`: only the Redis flag was set).
    pub paused_since: Option<DateTime<Utc>>,
    pub reason: String,
    /// Held deliveries made due now.
    pub released: u64,
}

/// Every paused inbox with its held deliveries counted (one scan of the deliveries delayed
/// set: cheap while it holds retries and held jobs, not a backlog of millions).
pub async fn paused(db: &DbPool, queues: &Queues) -> Result<Vec<PausedInbox>, ResumeError> {
    let mut conn = db.get().await.map_err(DbError::from)?;
    let rows = outbound::paused(&mut conn).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut held: HashMap<String, u64> = HashMap::new();
    for (_, job) in held_jobs(queues).await? {
        if let Some(inbox) = job.payload["inbox_id"].as_str() {
            *held.entry(inbox.to_owned()).or_default() += 1;
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| PausedInbox {
            held: held.get(&r.inbox_id).copied().unwrap_or(0),
            inbox_id: r.inbox_id,
            tenant_id: r.tenant_id,
            kind: r.kind,
            name: r.name,
            since: r.since,
            reason: r.reason,
        })
        .collect())
}

/// Lets a paused inbox send again: clears the durable record and the Redis flag, and releases
/// its held deliveries. An inbox that is not paused is [`ResumeError::NotPaused`].
pub async fn resume(db: &DbPool, queues: &Queues, inbox_id: &str) -> Result<Resumed, ResumeError> {
    let mut conn = db.get().await.map_err(DbError::from)?;
    if !inbox_exists(&mut conn, inbox_id).await? {
        return Err(ResumeError::UnknownInbox(inbox_id.to_owned()));
    }
    let cleared = outbound::clear_pause(&mut conn, inbox_id).await?;
    drop(conn);
    let flag = take_flag(queues, inbox_id).await?;
    let reason = match (&cleared, flag) {
        (Some(pause), _) => pause.reason.clone(),
        (None, Some(reason)) => reason,
        (None, None) => return Err(ResumeError::NotPaused(inbox_id.to_owned())),
    };
    let released = release(queues, inbox_id).await?;
    metrics::counter!("switchyard_inbox_resumed_total").increment(1);
    tracing::info!(inbox_id, released, "inbox deliveries resumed");
    Ok(Resumed {
        inbox_id: inbox_id.to_owned(),
        paused_since: cleared.map(|p| p.since),
        reason,
        released,
    })
}

async fn inbox_exists(
    conn: &mut diesel_async::AsyncPgConnection,
    inbox_id: &str,
) -> Result<bool, DbError> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let found: Option<String> = inboxes::table
        .find(inbox_id)
        .select(inboxes::id)
        .first(conn)
        .await
        .optional()?;
    Ok(found.is_some())
}

/// Deletes the Redis pause flag; returns the reason it held.
async fn take_flag(queues: &Queues, inbox_id: &str) -> Result<Option<String>, ResumeError> {
    let mut conn = queues.conn().await?;
    let key = keys::paused(queues.prefix(), inbox_id);
    let (reason, _): (Option<String>, i64) = redis::pipe()
        .atomic()
        .cmd("GET")
        .arg(&key)
        .cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await?;
    Ok(reason)
}

/// Makes the inbox's held deliveries due now (ZADD XX: a job promoted meanwhile is not put
/// back) and promotes them into the stream; returns how many were released.
/// Makes the inbox's held `delivery.send` jobs due now (after a resume, or once settings were
/// saved for an inbox that had none). A job of a still-paused inbox is simply held again.
pub async fn release(queues: &Queues, inbox_id: &str) -> Result<u64, ResumeError> {
    let mine: Vec<String> = held_jobs(queues)
        .await?
        .into_iter()
        .filter(|(_, job)| job.payload["inbox_id"].as_str() == Some(inbox_id))
        .map(|(member, _)| member)
        .collect();
    if mine.is_empty() {
        return Ok(0);
    }
    let queue = deliveries_queue();
    let delayed = queues.keys(&queue).delayed;
    let now = Utc::now().timestamp_millis();
    let mut pipe = redis::pipe();
    for member in &mine {
        pipe.cmd("ZADD")
            .arg(&delayed)
            .arg("XX")
            .arg(now)
            .arg(member)
            .ignore();
    }
    let mut conn = queues.conn().await?;
    pipe.query_async::<()>(&mut conn).await?;
    drop(conn);
    queues.promote_due(&queue, now, mine.len()).await?;
    Ok(mine.len() as u64)
}

/// The `delivery.send` jobs in the deliveries delayed set, with their members as stored.
async fn held_jobs(queues: &Queues) -> Result<Vec<(String, Job)>, ResumeError> {
    let delayed = queues.keys(&deliveries_queue()).delayed;
    let mut conn = queues.conn().await?;
    let mut cursor = 0u64;
    let mut seen = HashSet::new();
    let mut jobs = Vec::new();
    loop {
        let (next, page): (u64, Vec<(String, f64)>) = redis::cmd("ZSCAN")
            .arg(&delayed)
            .arg(cursor)
            .arg("COUNT")
            .arg(SCAN_BATCH)
            .query_async(&mut conn)
            .await?;
        for (member, _) in page {
            // ZSCAN may return a member twice; a job that does not decode is not ours to move.
            if let Ok(job) = serde_json::from_str::<Job>(&member)
                && job.kind == DELIVERY_SEND
                && seen.insert(member.clone())
            {
                jobs.push((member, job));
            }
        }
        if next == 0 {
            return Ok(jobs);
        }
        cursor = next;
    }
}

fn deliveries_queue() -> QueueName {
    // A constant name of the fleet's queue list; its validity is checked by queue's own tests.
    QueueName::new(DELIVERIES_QUEUE).unwrap_or_else(|_| unreachable!("deliveries is valid"))
}
