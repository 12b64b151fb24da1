//! `worker`: runs apalis workers on the given queues, or an operator subcommand.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::{
    config::StoreConfig,
    queue::{KNOWN_QUEUES, QueueName},
};
use worker::WorkerConfig;

#[derive(Parser, Debug)]
#[command(
    name = "worker",
    about = "Switchyard worker: process jobs from Redis Streams",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Queues to work, comma separated (default: every known queue).
    #[arg(long, value_delimiter = ',', env = "WORKER_QUEUES")]
    queue: Vec<String>,

    /// Jobs run at once per queue by this process.
    #[arg(long, default_value_t = 50, env = "WORKER_CONCURRENCY")]
    concurrency: usize,

    /// Attempts per job, the first included (default: the queue's policy).
    #[arg(long, env = "WORKER_TRIES")]
    tries: Option<u32>,

    /// Seconds one attempt may run before it is failed and retried (default: the queue's policy).
    #[arg(long, env = "WORKER_TIMEOUT")]
    timeout: Option<u64>,

    /// Seconds in-flight jobs get to finish after SIGTERM.
    #[arg(long, default_value_t = 25, env = "WORKER_GRACE")]
    grace: u64,

    /// Most entries fetched per read.
    #[arg(long, default_value_t = 100, env = "WORKER_BATCH")]
    batch: usize,

    /// Port for GET /metrics (Prometheus); no endpoint when unset.
    #[arg(long, env = "METRICS_PORT")]
    metrics_port: Option<u16>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Apply pending database migrations (the Procfile's release phase).
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = shared::telemetry::init("worker");
    let stores = StoreConfig::from_env()?;
    match cli.command {
        Some(Command::Migrate) => migrate(&stores).await,
        None => work(cli, stores).await,
    }
}

async fn migrate(stores: &StoreConfig) -> anyhow::Result<()> {
    let applied = shared::db::migrate(stores.database_url.expose())
        .await
        .context("running migrations")?;
    if applied.is_empty() {
        println!("database is up to date");
    }
    for version in applied {
        println!("applied {version}");
    }
    Ok(())
}

async fn work(cli: Cli, stores: StoreConfig) -> anyhow::Result<()> {
    let names: Vec<String> = if cli.queue.is_empty() {
        KNOWN_QUEUES.iter().map(|q| q.to_string()).collect()
    } else {
        cli.queue
    };
    let queues = names
        .iter()
        .map(|q| QueueName::new(q.trim()))
        .collect::<Result<Vec<_>, _>>()
        .context("--queue")?;
    let stop = shared::shutdown::on_signal();
    if let Some(port) = cli.metrics_port {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
            .await
            .with_context(|| format!("binding METRICS_PORT {port}"))?;
        tokio::spawn(shared::metrics_server::serve(listener, stop.clone()));
    }
    let config = WorkerConfig {
        stores,
        queues,
        concurrency: cli.concurrency,
        tries: cli.tries,
        timeout: cli.timeout.map(Duration::from_secs),
        grace: Duration::from_secs(cli.grace),
        batch: cli.batch,
        block: Duration::from_secs(2),
    };
    worker::run(config, stop).await
}
