//! `queue-bench`: measures the queue against the raw Redis Streams limit, in one run, on the
//! local Redis. Figures go to BENCHMARKS.md; nothing here is a test.
//!
//! cargo run --release -p worker --bin queue-bench -- --jobs 100000 --concurrency 50

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use shared::{
    jobs::JobRegistry,
    queue::{
        Job, QueueName, Queues, RetryPolicy,
        backend::{ConsumerOptions, run_worker},
        consume::StreamConsumer,
        failed::FailedJobs,
    },
};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Entries per XREADGROUP / per pipelined XADD batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Offered load (jobs/s) for the latency run.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Seconds of the latency run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/switchyard"
    )]
    database_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let prefix = format!("bench-{}", std::process::id());
    let queues = Queues::new(&args.redis_url, &prefix)?;
    let queue = QueueName::new("bench")?;
    println!(
        "queue-bench: {} jobs, concurrency {}, batch {}",
        args.jobs, args.concurrency, args.batch
    );

    let raw_add = raw_xadd(&args, &queues, &queue).await?;
    let raw_drain = raw_drain(&args, &queues, &queue).await?;
    clear(&args, &prefix).await?;

    let enqueue = enqueue_backlog(&args, &queues, &queue).await?;
    let drain = drain(&args, &queues, &queue, None).await?;
    let concurrent = drain_while_producing(&args, &queues, &queue).await?;
    let (p50, p99, achieved) = latency(&args, &queues, &queue).await?;
    clear(&args, &prefix).await?;

    println!();
    println!("| measure | jobs/s |");
    println!("| --- | --- |");
    println!(
        "| raw pipelined XADD (batch {}) | {raw_add:.0} |",
        args.batch
    );
    println!(
        "| raw XREADGROUP COUNT {} + XACK + XDEL loop | {raw_drain:.0} |",
        args.batch
    );
    println!("| switchyard enqueue_batch | {enqueue:.0} |");
    println!(
        "| switchyard drain, {}-deep backlog | {drain:.0} |",
        args.jobs
    );
    println!("| switchyard drain while producing | {concurrent:.0} |");
    println!("| drain / raw loop | {:.0} % |", 100.0 * drain / raw_drain);
    println!(
        "latency enqueue -> handler start at {achieved:.0} jobs/s offered: p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    println!("peak RSS {} MiB", peak_rss_kib() / 1024);
    Ok(())
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

async fn raw_conn(args: &Args) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(args.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?)
}

async fn raw_xadd(args: &Args, queues: &Queues, queue: &QueueName) -> anyhow::Result<f64> {
    let stream = queues.keys(queue).stream;
    let mut conn = raw_conn(args).await?;
    let body = Job::new(queue.clone(), "noop", serde_json::json!({})).to_json();
    let started = Instant::now();
    for chunk in 0..args.jobs.div_ceil(args.batch) {
        let n = args.batch.min(args.jobs - chunk * args.batch);
        let mut pipe = redis::pipe();
        for _ in 0..n {
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("job")
                .arg(&body)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
    }
    Ok(rate(args.jobs, started.elapsed()))
}

/// The framework-free loop: read a batch, ack and delete it, repeat.
async fn raw_drain(args: &Args, queues: &Queues, queue: &QueueName) -> anyhow::Result<f64> {
    let stream = queues.keys(queue).stream;
    let mut conn = raw_conn(args).await?;
    let _: Result<(), _> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("raw")
        .arg("0")
        .query_async(&mut conn)
        .await;
    let started = Instant::now();
    let mut done = 0;
    while done < args.jobs {
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("raw")
            .arg("c")
            .arg("COUNT")
            .arg(args.batch)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query_async(&mut conn)
            .await?;
        let ids: Vec<String> = reply
            .keys
            .into_iter()
            .flat_map(|k| k.ids)
            .map(|e| e.id)
            .collect();
        if ids.is_empty() {
            break;
        }
        redis::pipe()
            .cmd("XACK")
            .arg(&stream)
            .arg("raw")
            .arg(&ids)
            .ignore()
            .cmd("XDEL")
            .arg(&stream)
            .arg(&ids)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        done += ids.len();
    }
    Ok(rate(done, started.elapsed()))
}

async fn clear(args: &Args, prefix: &str) -> anyhow::Result<()> {
    let mut conn = raw_conn(args).await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(())
}

async fn enqueue_backlog(args: &Args, queues: &Queues, queue: &QueueName) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut left = args.jobs;
    while left > 0 {
        let n = args.batch.min(left);
        let jobs: Vec<Job> = (0..n)
            .map(|_| Job::new(queue.clone(), "noop", serde_json::json!({})))
            .collect();
        queues.enqueue_batch(&jobs).await?;
        left -= n;
    }
    Ok(rate(args.jobs, started.elapsed()))
}

struct Running {
    stop: CancellationToken,
    done: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<()>,
}

fn start(
    args: &Args,
    queues: &Queues,
    queue: &QueueName,
    latencies: Option<Arc<Mutex<Vec<f64>>>>,
) -> anyhow::Result<Running> {
    let done = Arc::new(AtomicU64::new(0));
    let counter = done.clone();
    let mut registry = JobRegistry::new();
    registry.register("noop", move |job: Job| {
        if let Some(latencies) = &latencies {
            let waited = chrono::Utc::now() - job.enqueued_at;
            latencies
                .lock()
                .unwrap()
                .push(waited.num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok(()) }
    });
    let options = ConsumerOptions {
        concurrency: args.concurrency,
        batch: args.batch,
        ..ConsumerOptions::for_policy(RetryPolicy::for_queue(queue.as_str()))
    };
    let consumer = StreamConsumer::new(queues, queue.clone(), "bench");
    let failed = FailedJobs::new(shared::db::pool(&args.database_url, 2)?);
    let stop = CancellationToken::new();
    let run = run_worker(consumer, options, failed, registry, stop.clone());
    let handle = tokio::spawn(async move {
        let _ = run.await;
    });
    Ok(Running { stop, done, handle })
}

async fn until_drained(
    queues: &Queues,
    queue: &QueueName,
    running: &Running,
    target: u64,
) -> anyhow::Result<()> {
    while running.done.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Handlers ran; wait for their acks too.
    while queues.stats(queue).await?.length > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

async fn drain(
    args: &Args,
    queues: &Queues,
    queue: &QueueName,
    latencies: Option<Arc<Mutex<Vec<f64>>>>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let running = start(args, queues, queue, latencies)?;
    until_drained(queues, queue, &running, args.jobs as u64).await?;
    let took = started.elapsed();
    running.stop.cancel();
    let _ = running.handle.await;
    Ok(rate(args.jobs, took))
}

async fn drain_while_producing(
    args: &Args,
    queues: &Queues,
    queue: &QueueName,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let running = start(args, queues, queue, None)?;
    enqueue_backlog(args, queues, queue).await?;
    until_drained(queues, queue, &running, args.jobs as u64).await?;
    let took = started.elapsed();
    running.stop.cancel();
    let _ = running.handle.await;
    Ok(rate(args.jobs, took))
}

/// Offers `rate` jobs/s one XADD at a time and reports enqueue → handler-start latency.
async fn latency(
    args: &Args,
    queues: &Queues,
    queue: &QueueName,
) -> anyhow::Result<(f64, f64, f64)> {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let running = start(args, queues, queue, Some(samples.clone()))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let total = (args.rate * args.seconds) as usize;
    let tick = Duration::from_millis(1);
    let per_tick = (args.rate as f64 / 1000.0).max(1.0);
    let started = Instant::now();
    let mut sent = 0usize;
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut owed = 0.0;
    while sent < total {
        ticks.tick().await;
        owed += per_tick;
        while owed >= 1.0 && sent < total {
            let q = queues.clone();
            let job = Job::new(queue.clone(), "noop", serde_json::json!({}));
            tokio::spawn(async move { q.enqueue(&job).await });
            sent += 1;
            owed -= 1.0;
        }
    }
    let achieved = rate(sent, started.elapsed());
    until_drained(queues, queue, &running, total as u64).await?;
    running.stop.cancel();
    let _ = running.handle.await;
    let mut all = samples.lock().unwrap().clone();
    all.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Ok((pct(0.50), pct(0.99), achieved))
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
