//! The periodic jobs that exist today: pruning old failed jobs by retention, and trimming acked
//! entries from every queue's stream. Both are sweeps relative to the run's `now`, safe to run
//! late or twice.
//!
//! Still to come here, once their tables exist: pruning `event_logs` and `webhook_logs` by their
//! retention (same shape as [`PruneFailedJobs`]), the SLA warning/breach sweep for sessions
//! waiting on an agent, and CSAT expiry (see `periodic.rs` for how to add one).

use chrono::{DateTime, Utc};
use futures::{FutureExt, future::BoxFuture};
use shared::queue::{QueueName, Queues, failed::FailedJobs};

use crate::periodic::{PeriodicJob, RunContext};

/// Deletes failed jobs that failed longer than `retention` ago (FAILED_JOBS_RETENTION_DAYS).
pub struct PruneFailedJobs {
    pub failed: FailedJobs,
    pub retention: chrono::Duration,
}

impl PruneFailedJobs {
    pub const NAME: &'static str = "prune-failed-jobs";

    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.retention
    }
}

impl PeriodicJob for PruneFailedJobs {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&self, ctx: RunContext) -> BoxFuture<'_, anyhow::Result<String>> {
        async move {
            let cutoff = self.cutoff(ctx.now);
            let deleted = self.failed.prune(cutoff).await?;
            Ok(format!(
                "pruned {deleted} failed jobs that failed before {cutoff}"
            ))
        }
        .boxed()
    }
}

/// Trims acked entries from each queue's stream (`shared::queue::trim`), never unacked ones.
pub struct TrimStreams {
    pub queues: Queues,
    pub names: Vec<QueueName>,
}

impl TrimStreams {
    pub const NAME: &'static str = "trim-streams";
}

impl PeriodicJob for TrimStreams {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&self, _: RunContext) -> BoxFuture<'_, anyhow::Result<String>> {
        async move {
            let mut total = 0;
            for queue in &self.names {
                total += self.queues.trim_acked(queue).await?.entries;
            }
            Ok(format!(
                "trimmed {total} acked stream entries over {} queues",
                self.names.len()
            ))
        }
        .boxed()
    }
}
