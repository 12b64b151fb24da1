//! The scheduler: one leader at a time (a Redis lease) promotes due retries into their streams
//! and gives abandoned entries back, for every queue.
//!
//! Workers do the same for their own queues opportunistically, so a fleet without a scheduler
//! still makes progress; the scheduler covers queues no worker is watching and keeps promotion
//! punctual when workers are busy. The Lua scripts make every move atomic, so the lease only
//! avoids duplicate effort, never duplicate jobs.

use std::time::Duration;

use shared::queue::{
    QueueName, Queues, RetryPolicy, consume::unique_consumer_name, maintain::Lease,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    pub queues: Vec<QueueName>,
    /// How often the leader promotes and reclaims.
    pub tick: Duration,
    /// How long leadership lasts without renewal (a dead leader is replaced after this).
    pub lease_ttl: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            queues: QueueName::known(),
            tick: Duration::from_millis(500),
            lease_ttl: Duration::from_secs(10),
        }
    }
}

/// What one tick of the leader did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    pub promoted: u64,
    pub reclaimed: u64,
}

pub struct Scheduler {
    queues: Queues,
    config: SchedulerConfig,
    lease: Lease,
}

impl Scheduler {
    pub fn new(queues: Queues, config: SchedulerConfig) -> Self {
        let lease = Lease::new(
            &queues,
            "scheduler",
            &unique_consumer_name(),
            config.lease_ttl,
        );
        Self {
            queues,
            config,
            lease,
        }
    }

    /// One round: returns None when another scheduler leads.
    pub async fn tick(&self) -> anyhow::Result<Option<TickReport>> {
        if !self.lease.acquire_or_renew().await? {
            return Ok(None);
        }
        let mut report = TickReport::default();
        for queue in &self.config.queues {
            let lease = RetryPolicy::for_queue(queue.as_str()).timeout;
            let (promoted, reclaimed) = self.queues.maintain(queue, lease, 20).await?;
            report.promoted += promoted;
            report.reclaimed += reclaimed;
        }
        Ok(Some(report))
    }

    pub async fn run(&self, stop: CancellationToken) {
        info!(queues = self.config.queues.len(), "scheduler starting");
        let mut ticks = tokio::time::interval(self.config.tick);
        let mut leading = false;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.cancelled() => break,
            }
            match self.tick().await {
                Ok(Some(report)) => {
                    if !leading {
                        info!("leading: this scheduler promotes and reclaims");
                    }
                    leading = true;
                    if report != TickReport::default() {
                        debug!(
                            promoted = report.promoted,
                            reclaimed = report.reclaimed,
                            "tick"
                        );
                    }
                }
                Ok(None) => {
                    if leading {
                        info!("another scheduler leads now");
                    }
                    leading = false;
                }
                Err(e) => warn!(error = %e, "scheduler tick failed; retrying"),
            }
        }
        if leading {
            let _ = self.lease.release().await;
        }
        info!("scheduler stopped");
    }
}
