//! The scheduler: one leader at a time (a Redis lease) promotes due retries into their streams,
//! gives abandoned entries back, and runs the periodic jobs, for every queue.
//!
//! Workers promote and reclaim too, opportunistically, so a fleet without a scheduler still makes
//! progress; the scheduler covers queues no worker is watching and keeps promotion punctual when
//! workers are busy. The Lua scripts make every move atomic, so the lease only avoids duplicate
//! effort, never duplicate jobs. Periodic jobs ([`periodic`]) add a per-occurrence claim on top
//! of the lease, so even two schedulers that both believe they lead never run one occurrence twice.
//!
//! Time comes from an injected [`Clock`]: promotion compares due times with it and schedules are
//! evaluated against it, so tests move a [`ManualClock`] and call [`Scheduler::tick`].

pub mod clock;
pub mod config;
pub mod housekeeping;
pub mod periodic;
pub mod retention;
pub mod schedule;
pub mod sla;

use std::{sync::Arc, time::Duration};

use shared::queue::{
    QueueName, Queues, RetryPolicy, consume::unique_consumer_name, maintain::Lease,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use clock::{Clock, ManualClock, SystemClock};
pub use periodic::{PeriodicJob, PeriodicRun, PeriodicTask, RunContext};
pub use schedule::Schedule;

#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    pub queues: Vec<QueueName>,
    /// How often the leader promotes, reclaims and looks for due periodic jobs.
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
    pub periodic: Vec<PeriodicRun>,
}

impl TickReport {
    fn is_quiet(&self) -> bool {
        self.promoted == 0 && self.reclaimed == 0 && self.periodic.is_empty()
    }
}

/// Most entries one script call moves; a tick repeats calls until a queue runs dry.
const BATCH: usize = 500;
/// Most calls per queue per tick, so one flooded queue cannot starve the others.
const ROUNDS: usize = 20;

pub struct Scheduler {
    queues: Queues,
    config: SchedulerConfig,
    lease: Lease,
    clock: Arc<dyn Clock>,
    periodic: Vec<PeriodicTask>,
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
            clock: Arc::new(SystemClock),
            periodic: Vec::new(),
        }
    }

    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Adds a periodic job; one that is off is left out.
    pub fn with_periodic(mut self, task: PeriodicTask) -> Self {
        if !task.schedule.is_off() {
            self.periodic.push(task);
        }
        self
    }

    pub fn periodic_tasks(&self) -> &[PeriodicTask] {
        &self.periodic
    }

    /// One round: returns None when another scheduler leads.
    pub async fn tick(&self) -> anyhow::Result<Option<TickReport>> {
        if !self.lease.acquire_or_renew().await? {
            return Ok(None);
        }
        let now = self.clock.now();
        let mut report = TickReport::default();
        for queue in &self.config.queues {
            report.promoted += self.promote(queue, now.timestamp_millis()).await?;
            report.reclaimed += self.reclaim(queue).await?;
        }
        report.periodic = periodic::run_due(&self.queues, &self.periodic, now).await;
        Ok(Some(report))
    }

    async fn promote(&self, queue: &QueueName, now_ms: i64) -> anyhow::Result<u64> {
        let mut total = 0;
        for _ in 0..ROUNDS {
            let moved = self.queues.promote_due(queue, now_ms, BATCH).await?;
            total += moved;
            if moved < BATCH as u64 {
                break;
            }
        }
        Ok(total)
    }

    /// Idle time is measured by Redis, so reclaim follows Redis's clock, not the injected one.
    async fn reclaim(&self, queue: &QueueName) -> anyhow::Result<u64> {
        let lease = RetryPolicy::for_queue(queue.as_str()).timeout;
        let mut total = 0;
        for _ in 0..ROUNDS {
            let moved = self.queues.reclaim_abandoned(queue, lease, BATCH).await?;
            total += moved;
            if moved < BATCH as u64 {
                break;
            }
        }
        Ok(total)
    }

    pub async fn run(&self, stop: CancellationToken) {
        info!(
            queues = self.config.queues.len(),
            periodic = ?self.periodic.iter().map(|t| format!("{} [{}]", t.job.name(), t.schedule)).collect::<Vec<_>>(),
            "scheduler starting"
        );
        let mut ticks = tokio::time::interval(self.config.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leading = false;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.cancelled() => break,
            }
            match self.tick().await {
                Ok(Some(report)) => {
                    if !leading {
                        info!("leading: this scheduler promotes, reclaims and runs periodic jobs");
                    }
                    leading = true;
                    if !report.is_quiet() {
                        debug!(
                            promoted = report.promoted,
                            reclaimed = report.reclaimed,
                            periodic = report.periodic.len(),
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
