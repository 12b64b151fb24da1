//! Settings of outbound webhook delivery, read from the environment once at boot
//! (`WebhookConfig::from_env`) and passed down; tests build one by hand.

use std::time::Duration;

use super::ssrf::AllowNets;
use crate::config::{ConfigError, env_parse};

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// WEBHOOK_ALLOW_NETS: CIDR ranges exempt from the SSRF refusal (default none).
    pub allow_nets: AllowNets,
    /// WEBHOOK_ALLOW_HTTP: accept `http://` URLs anywhere (development only; default false).
    /// `http://` to an address inside WEBHOOK_ALLOW_NETS is always accepted.
    pub allow_http: bool,
    /// WEBHOOK_TIMEOUT_SECS: how long one attempt may take, connect to last byte (default 15).
    /// Keep it well under the `webhooks` queue's 30 s job timeout, which bounds the whole handler.
    pub timeout: Duration,
    /// WEBHOOK_RESPONSE_CAP_BYTES: how much of a response body is kept in the log (default 4096).
    pub response_cap: usize,
    /// WEBHOOK_ENDPOINT_CONCURRENCY: attempts in flight to one subscription across every worker
    /// (default 4, held in Redis); further jobs for it are put back in the delayed set instead
    /// of waiting.
    pub endpoint_concurrency: usize,
    /// How far a job deferred by the per-endpoint limit is pushed back (default 2 s).
    pub defer_by: Duration,
    /// WEBHOOK_DISABLE_AFTER: failed attempts in a row that disable a subscription (default 10).
    pub disable_after: i32,
    /// WEBHOOK_RETENTION_DAYS: how long undelivered events stay recoverable (default 14).
    pub retention: Duration,
    /// How long the previous secret keeps signing after a rotation, unless the caller says.
    pub rotation_overlap: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_nets: AllowNets::none(),
            allow_http: false,
            timeout: Duration::from_secs(15),
            response_cap: 4096,
            endpoint_concurrency: 4,
            defer_by: Duration::from_secs(2),
            disable_after: 10,
            retention: Duration::from_secs(14 * 86_400),
            rotation_overlap: Duration::from_secs(24 * 3600),
        }
    }
}

impl WebhookConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let allow_nets = std::env::var("WEBHOOK_ALLOW_NETS")
            .unwrap_or_default()
            .parse()
            .map_err(|reason| ConfigError::Invalid {
                name: "WEBHOOK_ALLOW_NETS",
                reason,
            })?;
        let retention_days: u64 = env_parse("WEBHOOK_RETENTION_DAYS", 14)?;
        Ok(Self {
            allow_nets,
            allow_http: env_parse("WEBHOOK_ALLOW_HTTP", false)?,
            timeout: Duration::from_secs(env_parse("WEBHOOK_TIMEOUT_SECS", 15)?),
            response_cap: env_parse("WEBHOOK_RESPONSE_CAP_BYTES", defaults.response_cap)?,
            endpoint_concurrency: env_parse(
                "WEBHOOK_ENDPOINT_CONCURRENCY",
                defaults.endpoint_concurrency,
            )?
            .max(1),
            disable_after: env_parse("WEBHOOK_DISABLE_AFTER", defaults.disable_after)?.max(1),
            retention: Duration::from_secs(retention_days * 86_400),
            ..defaults
        })
    }
}
