//! Integration tests of the scheduler against the real Redis and Postgres. Time is a
//! [`ManualClock`] the tests move; every test has its own key prefix and database.

mod housekeeping;
mod periodic;
mod retention;
mod sla;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::{FutureExt, future::BoxFuture};
use scheduler::{
    ManualClock, PeriodicJob, PeriodicTask, RunContext, Schedule, Scheduler, SchedulerConfig,
};
use shared::testkit::TestRedis;

pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 time")
}

pub fn schedule(text: &str) -> Schedule {
    text.parse().expect("a valid schedule")
}

/// A scheduler on the test's prefix, driven by `clock`.
pub fn scheduler(redis: &TestRedis, clock: &ManualClock) -> Scheduler {
    let config = SchedulerConfig {
        lease_ttl: Duration::from_secs(60),
        ..SchedulerConfig::default()
    };
    Scheduler::new(redis.queues.clone(), config).with_clock(clock.clone())
}

/// Who ran which occurrence, shared by every [`Counting`] job of a test.
pub type Runs = Arc<Mutex<Vec<(String, DateTime<Utc>)>>>;

/// A periodic job that records each run under its scheduler's name.
pub struct Counting {
    pub name: &'static str,
    pub who: String,
    pub runs: Runs,
}

impl Counting {
    pub fn task(name: &'static str, every: &str, who: &str, runs: &Runs) -> PeriodicTask {
        PeriodicTask::new(
            schedule(every),
            Self {
                name,
                who: who.to_owned(),
                runs: runs.clone(),
            },
        )
    }
}

impl PeriodicJob for Counting {
    fn name(&self) -> &str {
        self.name
    }

    fn run(&self, ctx: RunContext) -> BoxFuture<'_, anyhow::Result<String>> {
        async move {
            self.runs
                .lock()
                .unwrap()
                .push((self.who.clone(), ctx.occurrence));
            Ok(format!("ran {}", ctx.occurrence))
        }
        .boxed()
    }
}
