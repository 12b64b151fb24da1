//! The periodic jobs that exist today: pruning old failed jobs by retention, and trimming acked
//! entries from every queue's stream. Both are sweeps relative to the run's `now`, safe to run
//! late or twice.
//!
//! Also: relaying what a crash left in the event/job outbox (so it goes out even when no traffic
//! flows), and pruning consumers that restarted processes left in the groups.

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

/// Sends broadcasts and follow-up jobs a crash left in the outbox (rows older than 10 s).
pub struct RelayOutbox {
    pub outbox: shared::events::Outbox,
}

impl RelayOutbox {
    pub const NAME: &'static str = "relay-outbox";
}

impl PeriodicJob for RelayOutbox {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&self, _ctx: RunContext) -> BoxFuture<'_, anyhow::Result<String>> {
        async move {
            let sent = self
                .outbox
                .relay_stale(std::time::Duration::from_secs(10), 500)
                .await?;
            Ok(format!("relayed {sent} outbox rows"))
        }
        .boxed()
    }
}

/// Removes group consumers idle longer than `idle` that hold no pending entries (atomic check,
/// so an entry is never dropped from a pending list).
pub struct PruneConsumers {
    pub queues: Queues,
    pub names: Vec<QueueName>,
    pub idle: std::time::Duration,
}

impl PruneConsumers {
    pub const NAME: &'static str = "prune-consumers";
}

impl PeriodicJob for PruneConsumers {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&self, _ctx: RunContext) -> BoxFuture<'_, anyhow::Result<String>> {
        async move {
            let mut pruned = 0;
            for name in &self.names {
                pruned += self.queues.prune_idle_consumers(name, self.idle).await?;
            }
            Ok(format!("pruned {pruned} idle consumers"))
        }
        .boxed()
    }
}
