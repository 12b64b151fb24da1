//! `worker`: runs apalis workers on the given queues, or an operator subcommand: `migrate`, and
//! the on-call tools `failed …` and `queues` (see `cli/`).

mod cli;

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::{
    config::StoreConfig,
    queue::{KNOWN_QUEUES, QueueName},
};
use worker::WorkerConfig;

// glibc's malloc was about a third of the worker's CPU in the pipeline profile (BENCHMARKS.md);
// ingress made the same switch for the same reason.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

    /// Postgres connections this process keeps (default 16, at most the jobs it runs at once).
    /// Jobs hold one only for their transactions, so it can stay well below the concurrency.
    #[arg(long, env = "WORKER_DB_POOL_SIZE")]
    db_pool_size: Option<usize>,

    /// Milliseconds the outbox rows of what went out gather before one cleanup deletes them
    /// (1–5000). Longer means fewer cleanups under load; the rows stay that long, which nothing
    /// minds below the relay's 10 s (a rerun and shutdown clean up first).
    #[arg(long, default_value_t = 20, env = "WORKER_OUTBOX_CLEANUP_MS",
          value_parser = clap::value_parser!(u64).range(1..=5000))]
    outbox_cleanup_ms: u64,

    /// Inbound store transactions this process runs at once. Steps that arrive while all are
    /// busy wait and go together into the next one (group commit).
    #[arg(long, default_value_t = worker::handlers::STORE_TRANSACTIONS, env = "WORKER_STORE_TRANSACTIONS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    store_transactions: usize,

    /// Most inbound messages stored in one transaction (1: each in its own).
    #[arg(long, default_value_t = worker::handlers::STORE_STEPS_PER_TRANSACTION, env = "WORKER_STORE_BATCH",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    store_batch: usize,

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
    /// Failed jobs (the dead set): list, show, retry, forget, flush.
    Failed {
        #[command(subcommand)]
        command: cli::failed::FailedCommand,
    },
    /// Per queue: length, in flight, consumers, oldest age, delayed, failed, throughput.
    Queues(cli::queues::QueuesArgs),
    /// Inboxes whose deliveries are paused (channel broken): list, resume.
    Inboxes {
        #[command(subcommand)]
        command: cli::inboxes::InboxesCommand,
    },
    /// Provisioning: tenants, inboxes, intents, agents, API keys, and `seed-demo`.
    Admin(worker::admin::AdminArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let mut cli = Cli::parse();
    match cli.command.take() {
        // The on-call tools keep stdout for their output: no log subscriber, errors on stderr.
        Some(Command::Failed { command }) => {
            Ok(on_call(async |s| cli::failed::run(s, command).await).await)
        }
        Some(Command::Queues(args)) => Ok(on_call(async |s| cli::queues::run(s, args).await).await),
        Some(Command::Inboxes { command }) => {
            Ok(on_call(async |s| cli::inboxes::run(s, command).await).await)
        }
        Some(Command::Admin(args)) => Ok(worker::admin::main(args).await),
        Some(Command::Migrate) => {
            let _telemetry = shared::telemetry::init("worker");
            migrate(&StoreConfig::from_env()?).await?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let _telemetry = shared::telemetry::init("worker");
            let stores = StoreConfig::from_env()?;
            work(cli, stores).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs an on-call command against the stores and turns its outcome into an exit code.
async fn on_call<F>(command: F) -> ExitCode
where
    F: AsyncFnOnce(&cli::Stores) -> Result<cli::Exit, cli::CliError>,
{
    let stores = StoreConfig::from_env()
        .map_err(|e| cli::CliError::Unavailable(e.to_string()))
        .and_then(|config| cli::Stores::new(&config));
    match stores {
        Ok(stores) => cli::finish(command(&stores).await),
        Err(e) => cli::finish(Err(e)),
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
        db_pool_size: cli.db_pool_size,
        outbox_cleanup_after: Duration::from_millis(cli.outbox_cleanup_ms),
        store_transactions: cli.store_transactions,
        store_steps: cli.store_batch,
    };
    worker::run(config, stop).await
}
