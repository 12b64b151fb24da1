//! `ingress`: Switchyard's front door. A lean hyper 1.x server that verifies each provider webhook
//! (Meta's Messenger and WhatsApp Cloud, WAHA, Mailgun and Postmark email, the web widget),
//! enqueues one job per inbound message or status update into the channel's Redis stream, and
//! answers within milliseconds. It never runs handlers: the workers do (ARCHITECTURE.md).
//!
//! The library owns start-up so tests run exactly what production runs: [`App::build`] takes an
//! already-bound listener (tests bind port 0) and [`App::run_until_stopped`] serves until the
//! shutdown token is cancelled, then drains in-flight requests. A request flows
//! [`routes`] (match) → route module (verify → parse) → [`intake`] (enqueue) → answer.

pub mod api;
pub mod body;
pub mod config;
pub mod errors;
pub mod health;
pub mod inbox_cache;
pub mod intake;
pub mod jobs;
pub mod json_fields;
pub mod metrics;
pub mod routes;
mod server;
pub mod sparse_json;
pub mod verify;

use std::{net::SocketAddr, sync::Arc};

use shared::{db::DbPool, queue::Queues};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use inbox_cache::InboxCache;

/// What every request handler shares.
pub struct State {
    pub config: Config,
    pub queues: Queues,
    pub db: DbPool,
    pub inboxes: InboxCache,
    /// `/api/*` (agent desk, provisioning, failed jobs).
    pub api: api::Api,
}

/// The ingress server, bound and ready to serve.
pub struct App {
    listener: TcpListener,
    state: Arc<State>,
}

impl App {
    /// Wires the stores (both connect lazily, so ingress starts while Redis or Postgres are
    /// still coming up and says so on `/readyz`).
    pub async fn build(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let queues = Queues::new(config.stores.redis_url.expose(), &config.stores.prefix)
            .context("REDIS_URL")?;
        let db = shared::db::pool(config.stores.database_url.expose(), config.db_pool_size)
            .context("DATABASE_URL")?;
        let inboxes = InboxCache::new(db.clone(), config.inbox_cache_ttl);
        // Before any request: ingress's metric handles are built once and kept (crate::metrics).
        shared::telemetry::install_metrics();
        metrics::describe();
        Ok(Self {
            listener,
            state: Arc::new(State {
                api: api::Api::new(db.clone(), queues.clone()),
                config,
                queues,
                db,
                inboxes,
            }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` is cancelled: then stops accepting, lets in-flight requests finish
    /// within the configured grace, and returns.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let state = self.state.clone();
        server::serve(self.listener, self.state, stop).await;
        // The last writes' outbox rows, so that no relay sends those events again.
        if let Err(error) = state.api.conversations.outbox.flush_forgotten().await {
            tracing::warn!(error = %error, "outbox cleanup at shutdown failed; the relay will re-send those rows");
        }
        Ok(())
    }
}
