//! Configuration from the environment (12-factor), parsed once at boot into typed values.
//! A bad value fails start-up with an error naming the variable; secrets print as `[redacted]`.

use std::{fmt, str::FromStr};

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The variable's value, or `default` when unset or empty.
pub fn env_or(name: &'static str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Parses the variable when set; `default` otherwise.
pub fn env_parse<T: FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
    }
}

/// What every process needs to reach the shared stores.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// REDIS_URL (default `redis://127.0.0.1:6379`).
    pub redis_url: Secret,
    /// DATABASE_URL (default `postgres://postgres@127.0.0.1:5432/switchyard`).
    pub database_url: Secret,
    /// SWITCHYARD_PREFIX: the Redis key prefix (default `switchyard`), so fleets can share a Redis.
    pub prefix: String,
}

impl StoreConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let prefix = env_or("SWITCHYARD_PREFIX", "switchyard");
        if prefix.contains(['{', '}', ' ']) {
            return Err(ConfigError::Invalid {
                name: "SWITCHYARD_PREFIX",
                reason: "must not contain braces or spaces".into(),
            });
        }
        Ok(Self {
            redis_url: Secret::new(env_or("REDIS_URL", "redis://127.0.0.1:6379")),
            database_url: Secret::new(env_or(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/switchyard",
            )),
            prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        let config = StoreConfig {
            redis_url: Secret::new("redis://:pw@host"),
            database_url: Secret::new("postgres://u:pw@h/db"),
            prefix: "p".into(),
        };
        assert!(!format!("{config:?}").contains("pw"));
    }
}
