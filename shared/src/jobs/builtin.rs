//! Kinds every worker knows: `noop` (benchmarks), `record` (a receipt per job in Postgres, the
//! smoke test of "each job's effect lands exactly once"), and `sleep` / `flaky` for operators
//! rehearsing slow and failing jobs.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::{JobError, JobRegistry};
use crate::{
    db::{DbPool, schema::job_receipts},
    queue::Job,
};

/// Registers the built-in kinds.
pub fn register(registry: &mut JobRegistry, db: DbPool) {
    registry.register("noop", |_job: Job| async { Ok(()) });
    let record_db = db.clone();
    registry.register("record", move |job: Job| record(record_db.clone(), job));
    registry.register("sleep", sleep);
    registry.register("flaky", move |job: Job| flaky(db.clone(), job));
}

/// Inserts a receipt for the job; a receipt already there (a redelivery) is success, not error.
/// `{"sleep_ms": N}` makes it work N milliseconds first (long-job and shutdown drills).
async fn record(db: DbPool, job: Job) -> Result<(), JobError> {
    if let Some(ms) = job.payload.get("sleep_ms").and_then(|v| v.as_u64()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut conn = db.get().await.map_err(JobError::transient)?;
    diesel::insert_into(job_receipts::table)
        .values((
            job_receipts::job_id.eq(job.id.to_string()),
            job_receipts::queue.eq(job.queue.as_str()),
            job_receipts::attempt.eq(job.attempt as i32),
        ))
        .on_conflict(job_receipts::job_id)
        .do_nothing()
        .execute(&mut conn)
        .await
        .map_err(JobError::transient)?;
    Ok(())
}

/// `{"ms": N}`: waits N milliseconds, then succeeds.
async fn sleep(job: Job) -> Result<(), JobError> {
    let ms = job
        .payload
        .get("ms")
        .and_then(|v| v.as_u64())
        .unwrap_or(1000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(())
}

/// `{"fail_times": N, "permanent": bool, "error": "..."}`: fails its first N attempts
/// (permanently if asked), then succeeds like `record`. Attempts count from the envelope, so no
/// state is kept.
async fn flaky(db: DbPool, job: Job) -> Result<(), JobError> {
    let fail_times = job
        .payload
        .get("fail_times")
        .and_then(|v| v.as_u64())
        .unwrap_or(u64::MAX);
    let message = job
        .payload
        .get("error")
        .and_then(|v| v.as_str())
        .unwrap_or("flaky job failed on purpose")
        .to_owned();
    if u64::from(job.attempt) > fail_times {
        return record(db, job).await;
    }
    if job
        .payload
        .get("permanent")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
    {
        Err(JobError::Permanent(message))
    } else {
        Err(JobError::Transient(format!(
            "{message} (attempt {})",
            job.attempt
        )))
    }
}
