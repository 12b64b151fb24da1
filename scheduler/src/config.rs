//! The scheduler's configuration from the environment: which periodic jobs run when, and the
//! retention they apply. Parsed once at boot; a bad value stops start-up naming the variable.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `SCHEDULE_PRUNE_FAILED_JOBS` | `17 * * * *` | when old failed jobs are pruned |
//! | `FAILED_JOBS_RETENTION_DAYS` | `14` | failed jobs older than this are pruned; `0` keeps them forever |
//! | `SCHEDULE_TRIM_STREAMS` | `*/5 * * * *` | when acked stream entries are trimmed |
//!
//! Schedules are UTC cron expressions, `@every <duration>` or `off` (see `schedule.rs`).

use shared::config::{ConfigError, env_or, env_parse};

use crate::schedule::Schedule;

#[derive(Clone, Debug)]
pub struct PeriodicConfig {
    /// SCHEDULE_PRUNE_FAILED_JOBS; off when the retention is 0.
    pub prune_failed_jobs: Schedule,
    /// FAILED_JOBS_RETENTION_DAYS.
    pub failed_jobs_retention_days: u32,
    /// SCHEDULE_TRIM_STREAMS.
    pub trim_streams: Schedule,
}

impl PeriodicConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let failed_jobs_retention_days = env_parse("FAILED_JOBS_RETENTION_DAYS", 14u32)?;
        let mut prune_failed_jobs = schedule("SCHEDULE_PRUNE_FAILED_JOBS", "17 * * * *")?;
        if failed_jobs_retention_days == 0 {
            prune_failed_jobs = Schedule::Off;
        }
        Ok(Self {
            prune_failed_jobs,
            failed_jobs_retention_days,
            trim_streams: schedule("SCHEDULE_TRIM_STREAMS", "*/5 * * * *")?,
        })
    }
}

fn schedule(name: &'static str, default: &str) -> Result<Schedule, ConfigError> {
    env_or(name, default)
        .parse()
        .map_err(|e: crate::schedule::InvalidSchedule| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        })
}
