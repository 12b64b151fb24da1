//! `ingress` (Procfile `web`): parse the configuration, start telemetry, bind `$PORT`, and serve
//! until SIGTERM. Everything else lives in the library so tests run the same code.

use anyhow::Context as _;
use ingress::{App, Config};

// glibc's malloc showed up as a fifth of ingress's CPU under load (docs/ingress.md, benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("configuration")?;
    let _telemetry = shared::telemetry::init("ingress");
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port))
        .await
        .with_context(|| format!("cannot listen on port {}", config.port))?;
    let app = App::build(config, listener).await?;
    app.run_until_stopped(shared::shutdown::on_signal()).await
}
