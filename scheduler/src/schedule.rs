//! When a periodic job is due: a cron expression (UTC), a fixed interval, or off.
//!
//! Schedules come from configuration (`SCHEDULE_<JOB>` variables, see `config.rs`):
//! `*/5 * * * *` (five-field cron, an optional leading seconds field, `@hourly`, `@daily` …),
//! `@every 30s` (any humantime duration; occurrences are aligned to the Unix epoch so every
//! scheduler agrees on them), or `off`. The scheduler asks for the latest occurrence at or before
//! "now" and runs it once, so occurrences missed while no scheduler ran collapse into one run.

use std::{fmt, str::FromStr, time::Duration};

use chrono::{DateTime, TimeZone, Utc};

#[derive(Clone)]
pub enum Schedule {
    Cron(Box<croner::Cron>),
    Every(Duration),
    Off,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid schedule {input:?}: {reason} (use a cron expression such as \"*/5 * * * *\", \"@every 30s\" or \"off\")"
)]
pub struct InvalidSchedule {
    pub input: String,
    pub reason: String,
}

impl Schedule {
    /// The latest occurrence at or before `now`; `None` when off or never.
    pub fn latest_at_or_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Off => None,
            Self::Every(every) => {
                let step = i64::try_from(every.as_millis()).ok()?.max(1);
                let ms = now.timestamp_millis().div_euclid(step) * step;
                Utc.timestamp_millis_opt(ms).single()
            }
            Self::Cron(cron) => cron.find_previous_occurrence(&now, true).ok(),
        }
    }

    /// The first occurrence after `now`, for logs and status.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Off => None,
            Self::Every(every) => {
                let step = chrono::Duration::from_std(*every).ok()?;
                Some(self.latest_at_or_before(now)? + step)
            }
            Self::Cron(cron) => cron.find_next_occurrence(&now, false).ok(),
        }
    }

    pub fn is_off(&self) -> bool {
        matches!(self, Self::Off)
    }
}

impl FromStr for Schedule {
    type Err = InvalidSchedule;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim();
        let invalid = |reason: String| InvalidSchedule {
            input: input.to_owned(),
            reason,
        };
        if matches!(text, "off" | "never" | "disabled") {
            return Ok(Self::Off);
        }
        if let Some(every) = text.strip_prefix("@every") {
            let every =
                humantime::parse_duration(every.trim()).map_err(|e| invalid(e.to_string()))?;
            if every.is_zero() {
                return Err(invalid("the interval must be longer than zero".into()));
            }
            return Ok(Self::Every(every));
        }
        let cron = croner::Cron::from_str(text).map_err(|e| invalid(e.to_string()))?;
        Ok(Self::Cron(Box::new(cron)))
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Every(every) => write!(f, "@every {}", humantime::format_duration(*every)),
            Self::Cron(cron) => f.write_str(cron.pattern.as_str()),
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn cron_finds_the_latest_occurrence_including_now() {
        let every_five: Schedule = "*/5 * * * *".parse().unwrap();
        let check = |now: &str, want: &str| {
            assert_eq!(
                every_five.latest_at_or_before(at(now)),
                Some(at(want)),
                "{now}"
            );
        };
        check("2026-01-01T00:04:59Z", "2026-01-01T00:00:00Z");
        check("2026-01-01T00:05:00Z", "2026-01-01T00:05:00Z");
        check("2026-01-01T00:27:13Z", "2026-01-01T00:25:00Z");
        assert_eq!(
            every_five.next_after(at("2026-01-01T00:05:00Z")),
            Some(at("2026-01-01T00:10:00Z"))
        );
    }

    #[test]
    fn every_is_aligned_to_the_epoch() {
        let s: Schedule = "@every 30s".parse().unwrap();
        assert_eq!(
            s.latest_at_or_before(at("2026-01-01T00:00:59Z")),
            Some(at("2026-01-01T00:00:30Z"))
        );
        assert_eq!(
            s.next_after(at("2026-01-01T00:00:59Z")),
            Some(at("2026-01-01T00:01:00Z"))
        );
    }

    #[test]
    fn off_and_nicknames_and_errors() {
        assert!("off".parse::<Schedule>().unwrap().is_off());
        let hourly: Schedule = "@hourly".parse().unwrap();
        assert_eq!(
            hourly.latest_at_or_before(at("2026-01-01T05:59:00Z")),
            Some(at("2026-01-01T05:00:00Z"))
        );
        for bad in ["", "every day", "61 * * * *", "@every 0s", "@every soon"] {
            let err = bad.parse::<Schedule>().unwrap_err();
            assert!(err.to_string().contains("invalid schedule"), "{bad}: {err}");
        }
    }
}
