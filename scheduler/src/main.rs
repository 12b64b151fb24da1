//! `scheduler`: the fleet's clock. Run one or more; a Redis lease elects the leader.

use anyhow::Context;
use clap::Parser;
use scheduler::{Scheduler, SchedulerConfig};
use shared::{
    config::StoreConfig,
    queue::{QueueName, Queues},
};

#[derive(Parser, Debug)]
#[command(
    name = "scheduler",
    about = "Promote due retries and reclaim abandoned jobs (leader-elected)"
)]
struct Cli {
    /// Queues to look after, comma separated (default: every known queue).
    #[arg(long, value_delimiter = ',', env = "SCHEDULER_QUEUES")]
    queue: Vec<String>,

    /// Port for GET /metrics; no endpoint when unset.
    #[arg(long, env = "SCHEDULER_METRICS_PORT")]
    metrics_port: Option<u16>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = shared::telemetry::init("scheduler");
    let stores = StoreConfig::from_env()?;
    let mut config = SchedulerConfig::default();
    if !cli.queue.is_empty() {
        config.queues = cli
            .queue
            .iter()
            .map(|q| QueueName::new(q.trim()))
            .collect::<Result<_, _>>()
            .context("--queue")?;
    }
    let stop = shared::shutdown::on_signal();
    if let Some(port) = cli.metrics_port {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
        tokio::spawn(shared::metrics_server::serve(listener, stop.clone()));
    }
    let queues = Queues::new(stores.redis_url.expose(), &stores.prefix)?;
    Scheduler::new(queues, config).run(stop).await;
    Ok(())
}
