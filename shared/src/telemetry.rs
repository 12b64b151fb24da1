//! Logs, metrics and error reporting, set up the same way by every process.
//!
//! - `RUST_LOG` filters (default `info`), `LOG_FORMAT=json|pretty` picks the format.
//! - Prometheus: a global recorder; each binary exposes [`render_metrics`] on `/metrics`.
//! - Sentry: enabled when `SENTRY_DSN` is set; the returned guard flushes on drop.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Keep this alive for the life of the process: dropping it flushes Sentry.
pub struct TelemetryGuard {
    _sentry: Option<sentry::ClientInitGuard>,
}

pub fn init(service: &'static str) -> TelemetryGuard {
    let sentry = std::env::var("SENTRY_DSN")
        .ok()
        .filter(|d| !d.is_empty())
        .map(|dsn| {
            sentry::init((
                dsn,
                sentry::ClientOptions::new()
                    .maybe_release(sentry::release_name!())
                    .server_name(service),
            ))
        });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().compact())
            .try_init()
    };
    // A second init (tests run many apps in one process) keeps the first subscriber.
    drop(result);
    install_metrics();
    TelemetryGuard { _sentry: sentry }
}

/// Installs the Prometheus recorder once per process.
pub fn install_metrics() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let buckets = [
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
        ];
        PrometheusBuilder::new()
            .set_buckets(&buckets)
            .and_then(|b| b.install_recorder())
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
    })
}

/// The Prometheus text exposition of every metric recorded so far.
pub fn render_metrics() -> String {
    install_metrics().render()
}
