//! The scheduler's configuration from the environment: which periodic jobs run when, and the
//! retention they apply. Parsed once at boot; a bad value stops start-up naming the variable.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `SCHEDULE_PRUNE_FAILED_JOBS` | `17 * * * *` | when old failed jobs are pruned |
//! | `FAILED_JOBS_RETENTION_DAYS` | `14` | failed jobs older than this are pruned; `0` keeps them forever |
//! | `SCHEDULE_TRIM_STREAMS` | `*/5 * * * *` | when acked stream entries are trimmed |
//! | `SCHEDULE_PRUNE_EVENT_LOGS` | `37 3 * * *` | when old `event_logs` rows are pruned |
//! | `EVENT_LOG_RETENTION_DAYS` | `90` | events older than this are pruned; `0` keeps them forever |
//! | `SCHEDULE_PRUNE_WEBHOOK_LOGS` | `47 * * * *` | when old webhook logs/deliveries are pruned |
//! | `SCHEDULE_SLA_SWEEP` | `* * * * *` | when waiting queue items are checked against their inbox's SLA thresholds |
//! | `SCHEDULE_EXPIRE_CSAT` | `*/5 * * * *` | when unanswered CSAT surveys are expired |
//! | `CSAT_EXPIRY_DEFAULT` | `24h` | how long a survey waits for an answer when its inbox sets no `csat_expiry_secs` |
//! | `WEBHOOK_RETENTION_DAYS` | `14` | (shared with the webhook fan-out) webhook logs older than this are pruned; `0` keeps them |
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
    /// SCHEDULE_SLA_SWEEP.
    pub sla_sweep: Schedule,
    /// SCHEDULE_EXPIRE_CSAT.
    pub expire_csat: Schedule,
    /// CSAT_EXPIRY_DEFAULT.
    pub csat_expiry_default: std::time::Duration,
    /// SCHEDULE_PRUNE_EVENT_LOGS; off when the retention is 0.
    pub prune_event_logs: Schedule,
    /// EVENT_LOG_RETENTION_DAYS.
    pub event_log_retention_days: u32,
    /// SCHEDULE_PRUNE_WEBHOOK_LOGS; off when the retention is 0.
    pub prune_webhook_logs: Schedule,
    /// WEBHOOK_RETENTION_DAYS.
    pub webhook_retention_days: u32,
    /// SCHEDULE_RELAY_OUTBOX: events and jobs a crash left in the outbox go out even without traffic.
    pub relay_outbox: Schedule,
    /// SCHEDULE_PRUNE_CONSUMERS: consumers left behind by restarted processes are removed.
    pub prune_consumers: Schedule,
}

impl PeriodicConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let failed_jobs_retention_days = env_parse("FAILED_JOBS_RETENTION_DAYS", 14u32)?;
        let mut prune_failed_jobs = schedule("SCHEDULE_PRUNE_FAILED_JOBS", "17 * * * *")?;
        if failed_jobs_retention_days == 0 {
            prune_failed_jobs = Schedule::Off;
        }
        let event_log_retention_days = env_parse("EVENT_LOG_RETENTION_DAYS", 90u32)?;
        let mut prune_event_logs = schedule("SCHEDULE_PRUNE_EVENT_LOGS", "37 3 * * *")?;
        if event_log_retention_days == 0 {
            prune_event_logs = Schedule::Off;
        }
        let webhook_retention_days = env_parse("WEBHOOK_RETENTION_DAYS", 14u32)?;
        let mut prune_webhook_logs = schedule("SCHEDULE_PRUNE_WEBHOOK_LOGS", "47 * * * *")?;
        if webhook_retention_days == 0 {
            prune_webhook_logs = Schedule::Off;
        }
        let csat_expiry = env_or("CSAT_EXPIRY_DEFAULT", "24h");
        let csat_expiry_default =
            humantime::parse_duration(&csat_expiry).map_err(|e| ConfigError::Invalid {
                name: "CSAT_EXPIRY_DEFAULT",
                reason: e.to_string(),
            })?;
        Ok(Self {
            sla_sweep: schedule("SCHEDULE_SLA_SWEEP", "* * * * *")?,
            expire_csat: schedule("SCHEDULE_EXPIRE_CSAT", "*/5 * * * *")?,
            csat_expiry_default,
            prune_event_logs,
            event_log_retention_days,
            prune_webhook_logs,
            webhook_retention_days,
            prune_failed_jobs,
            failed_jobs_retention_days,
            trim_streams: schedule("SCHEDULE_TRIM_STREAMS", "*/5 * * * *")?,
            relay_outbox: schedule("SCHEDULE_RELAY_OUTBOX", "@every 10s")?,
            prune_consumers: schedule("SCHEDULE_PRUNE_CONSUMERS", "23 * * * *")?,
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
