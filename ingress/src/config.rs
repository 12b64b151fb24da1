//! Ingress configuration: read once from the environment at boot, typed and validated, so a bad
//! value stops start-up with an error naming the variable. Tests build it with [`Config::new`] and
//! change the fields they care about. Secrets are [`Secret`]s and never print.

use std::time::Duration;

use shared::config::{ConfigError, Secret, StoreConfig, env_or, env_parse};

/// Meta's app-level settings: one Meta app per deployment (DESIGN.md §7).
#[derive(Clone, Debug, Default)]
pub struct MetaConfig {
    /// META_APP_SECRET: signs every Messenger and WhatsApp Cloud webhook (X-Hub-Signature-256).
    pub app_secret: Option<Secret>,
    /// META_VERIFY_TOKEN: what Meta's subscription handshake must present.
    pub verify_token: Option<Secret>,
}

/// Limits that keep one client from stalling or exhausting the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// INGRESS_MAX_BODY_BYTES: larger bodies get 413 (default 3 MiB: Meta batches up to 1,000 updates).
    pub max_body_bytes: usize,
    /// INGRESS_HEADER_TIMEOUT_MS: a client must send its request head within this (default 10 s).
    pub header_read_timeout: Duration,
    /// INGRESS_BODY_TIMEOUT_MS: and its body within this after the head (default 30 s).
    pub body_read_timeout: Duration,
    /// INGRESS_MAX_CONNECTIONS: connections served at once; more wait in the accept backlog.
    pub max_connections: usize,
}

/// Everything `ingress` needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// PORT: where to listen (default 8080); used by `main` only, tests bind port 0.
    pub port: u16,
    /// REDIS_URL, DATABASE_URL, SWITCHYARD_PREFIX.
    pub stores: StoreConfig,
    pub meta: MetaConfig,
    pub limits: Limits,
    /// INGRESS_INBOX_CACHE_TTL_MS: how long an inbox read from Postgres is trusted (default 30 s).
    pub inbox_cache_ttl: Duration,
    /// INGRESS_RETRY_AFTER_SECS: the Retry-After sent with a 503 when a store is down (default 5).
    pub retry_after: Duration,
    /// INGRESS_DEDUP_WINDOW_SECS: how long a provider message id is remembered (default 24 h).
    pub dedup_window: Duration,
    /// INGRESS_SIGNATURE_MAX_AGE_SECS: how old a Mailgun signature's timestamp may be (default 300).
    pub signature_max_age: Duration,
    /// INGRESS_SHUTDOWN_GRACE_SECS: time in-flight requests get after SIGTERM (default 20).
    pub shutdown_grace: Duration,
    /// INGRESS_DB_POOL_SIZE: Postgres connections (default 8; inbox lookups are cached).
    pub db_pool_size: usize,
}

impl Config {
    /// Defaults around the given stores, with Meta unconfigured.
    pub fn new(stores: StoreConfig) -> Self {
        Self {
            port: 8080,
            stores,
            meta: MetaConfig::default(),
            limits: Limits {
                max_body_bytes: 3 * 1024 * 1024,
                header_read_timeout: Duration::from_secs(10),
                body_read_timeout: Duration::from_secs(30),
                max_connections: 10_000,
            },
            inbox_cache_ttl: Duration::from_secs(30),
            retry_after: Duration::from_secs(5),
            dedup_window: shared::queue::enqueue::DEFAULT_DEDUP_WINDOW,
            signature_max_age: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(20),
            db_pool_size: 8,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::new(StoreConfig::from_env()?);
        let ms = |name, default: Duration| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(env_parse(
                name,
                default.as_millis() as u64,
            )?))
        };
        let secs = |name, default: Duration| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(env_parse(name, default.as_secs())?))
        };
        let secret = |name| {
            Some(env_or(name, ""))
                .filter(|v| !v.is_empty())
                .map(Secret::new)
        };
        Ok(Self {
            port: env_parse("PORT", defaults.port)?,
            meta: MetaConfig {
                app_secret: secret("META_APP_SECRET"),
                verify_token: secret("META_VERIFY_TOKEN"),
            },
            limits: Limits {
                max_body_bytes: env_parse(
                    "INGRESS_MAX_BODY_BYTES",
                    defaults.limits.max_body_bytes,
                )?,
                header_read_timeout: ms(
                    "INGRESS_HEADER_TIMEOUT_MS",
                    defaults.limits.header_read_timeout,
                )?,
                body_read_timeout: ms(
                    "INGRESS_BODY_TIMEOUT_MS",
                    defaults.limits.body_read_timeout,
                )?,
                max_connections: env_parse(
                    "INGRESS_MAX_CONNECTIONS",
                    defaults.limits.max_connections,
                )?,
            },
            inbox_cache_ttl: ms("INGRESS_INBOX_CACHE_TTL_MS", defaults.inbox_cache_ttl)?,
            retry_after: secs("INGRESS_RETRY_AFTER_SECS", defaults.retry_after)?,
            dedup_window: secs("INGRESS_DEDUP_WINDOW_SECS", defaults.dedup_window)?,
            signature_max_age: secs("INGRESS_SIGNATURE_MAX_AGE_SECS", defaults.signature_max_age)?,
            shutdown_grace: secs("INGRESS_SHUTDOWN_GRACE_SECS", defaults.shutdown_grace)?,
            db_pool_size: env_parse("INGRESS_DB_POOL_SIZE", defaults.db_pool_size)?,
            stores: defaults.stores,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let mut config = Config::new(StoreConfig {
            redis_url: Secret::new("redis://:pw1@h"),
            database_url: Secret::new("postgres://u:pw2@h/db"),
            prefix: "p".into(),
        });
        config.meta.app_secret = Some(Secret::new("pw3"));
        config.meta.verify_token = Some(Secret::new("pw4"));
        assert!(!format!("{config:?}").contains("pw"));
    }
}
