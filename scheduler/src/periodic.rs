//! Periodic jobs: named sweeps run on a schedule by whichever scheduler leads, once per occurrence
//! fleet-wide.
//!
//! Two guards keep two schedulers from both running one: only the lease holder looks for due jobs
//! at all, and each occurrence is claimed in Redis with a compare-and-set on the job's last claimed
//! occurrence ([`Queues::claim_occurrence`]), so a leader whose lease lapsed while it worked and
//! its successor still cannot both run the same occurrence. The claim comes before the run, so an
//! occurrence runs at most once: a scheduler that dies mid-run loses that run, and the next
//! occurrence catches up — every job here is a sweep ("delete what is older than", "trim what is
//! acked"), idempotent and cumulative, which is what makes at-most-once per occurrence right.
//!
//! Adding a job (the SLA warning/breach sweep and CSAT expiry plug in here once their tables
//! exist): implement [`PeriodicJob`] — a stable kebab-case `name` (it keys the claim in Redis) and
//! a `run` that does one sweep relative to `ctx.now` (never `Utc::now()`, so tests drive it) — then
//! register it in `main.rs` with a `SCHEDULE_<NAME>` variable (see `config.rs`).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use shared::queue::Queues;
use tracing::{info, warn};

use crate::schedule::Schedule;

/// What a run is told: the occurrence it stands for and the scheduler clock's now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunContext {
    pub occurrence: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// One kind of periodic sweep. `run` returns a one-line summary for the log.
pub trait PeriodicJob: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn run(&self, ctx: RunContext) -> BoxFuture<'_, anyhow::Result<String>>;
}

/// A job and when it runs.
#[derive(Clone)]
pub struct PeriodicTask {
    pub schedule: Schedule,
    pub job: Arc<dyn PeriodicJob>,
    /// A run taking longer is abandoned (and logged); the next occurrence tries again.
    pub timeout: Duration,
}

impl PeriodicTask {
    pub fn new(schedule: Schedule, job: impl PeriodicJob) -> Self {
        Self {
            schedule,
            job: Arc::new(job),
            timeout: Duration::from_secs(600),
        }
    }
}

/// One run of one occurrence, as reported by a tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodicRun {
    pub job: String,
    pub occurrence: DateTime<Utc>,
    /// The job's summary, or its error.
    pub outcome: Result<String, String>,
}

/// Claims and runs every task whose latest occurrence at or before `now` has not run yet.
/// Tasks run one after another: they are short sweeps, and a claim made for a task that then
/// waits behind another is still its own.
pub async fn run_due(
    queues: &Queues,
    tasks: &[PeriodicTask],
    now: DateTime<Utc>,
) -> Vec<PeriodicRun> {
    let mut runs = Vec::new();
    for task in tasks {
        let Some(occurrence) = task.schedule.latest_at_or_before(now) else {
            continue;
        };
        let name = task.job.name();
        match queues
            .claim_occurrence(name, occurrence.timestamp_millis(), now.timestamp_millis())
            .await
        {
            Ok(true) => runs.push(run_one(task, RunContext { occurrence, now }).await),
            Ok(false) => {}
            Err(e) => warn!(job = name, error = %e, "cannot claim periodic job; will try again"),
        }
    }
    runs
}

async fn run_one(task: &PeriodicTask, ctx: RunContext) -> PeriodicRun {
    let name = task.job.name().to_owned();
    let outcome = match tokio::time::timeout(task.timeout, task.job.run(ctx)).await {
        Ok(Ok(summary)) => {
            info!(job = %name, occurrence = %ctx.occurrence, "{summary}");
            Ok(summary)
        }
        Ok(Err(e)) => {
            warn!(job = %name, occurrence = %ctx.occurrence, error = format!("{e:#}"), "periodic job failed");
            Err(format!("{e:#}"))
        }
        Err(_) => {
            warn!(job = %name, timeout = ?task.timeout, "periodic job timed out");
            Err(format!("timed out after {:?}", task.timeout))
        }
    };
    PeriodicRun {
        job: name,
        occurrence: ctx.occurrence,
        outcome,
    }
}
