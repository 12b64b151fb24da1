//! `scheduler`: the fleet's clock. Run one or more; a Redis lease elects the leader.

use anyhow::Context;
use clap::Parser;
use scheduler::{
    PeriodicTask, Scheduler, SchedulerConfig,
    config::PeriodicConfig,
    housekeeping::{PruneConsumers, PruneFailedJobs, RelayOutbox, TrimStreams},
    retention::{PruneEventLogs, PruneWebhookLogs},
    sla::{ExpireCsat, SlaSweep},
};
use shared::{
    config::StoreConfig,
    queue::{QueueName, Queues, failed::FailedJobs},
};

#[derive(Parser, Debug)]
#[command(
    name = "scheduler",
    about = "Promote due retries, reclaim abandoned jobs and run periodic jobs (leader-elected)"
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
    let periodic = PeriodicConfig::from_env()?;
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
    let db = shared::db::pool(stores.database_url.expose(), 2)?;
    let conversations = shared::conversation::Conversations::new(
        db.clone(),
        queues.clone(),
        shared::events::Broadcaster::from_env(queues.clone()),
        "switchyard.scheduler",
    );
    let scheduler = Scheduler::new(queues.clone(), config.clone())
        .with_periodic(PeriodicTask::new(
            periodic.relay_outbox,
            RelayOutbox {
                outbox: conversations.outbox.clone(),
            },
        ))
        .with_periodic(PeriodicTask::new(
            periodic.prune_consumers,
            PruneConsumers {
                queues: queues.clone(),
                names: config.queues.clone(),
                idle: std::time::Duration::from_secs(3600),
            },
        ))
        .with_periodic(PeriodicTask::new(
            periodic.sla_sweep,
            SlaSweep {
                conversations: conversations.clone(),
            },
        ))
        .with_periodic(PeriodicTask::new(
            periodic.expire_csat,
            ExpireCsat {
                conversations,
                default_expiry: chrono::Duration::from_std(periodic.csat_expiry_default)
                    .unwrap_or(chrono::Duration::days(1)),
            },
        ))
        .with_periodic(PeriodicTask::new(
            periodic.prune_failed_jobs,
            PruneFailedJobs {
                failed: FailedJobs::new(db.clone()),
                retention: chrono::Duration::days(periodic.failed_jobs_retention_days.into()),
            },
        ))
        .with_periodic(PeriodicTask::new(
            periodic.trim_streams,
            TrimStreams {
                queues,
                names: config.queues,
            },
        ))
        .with_periodic(PeriodicTask::new(
            periodic.prune_event_logs,
            PruneEventLogs {
                db: db.clone(),
                retention: chrono::Duration::days(periodic.event_log_retention_days.into()),
            },
        ))
        .with_periodic(PeriodicTask::new(
            periodic.prune_webhook_logs,
            PruneWebhookLogs {
                db,
                retention: std::time::Duration::from_secs(
                    u64::from(periodic.webhook_retention_days) * 86_400,
                ),
            },
        ));
    scheduler.run(stop).await;
    Ok(())
}
