//! `pipeline-bench`: end-to-end latency of the conversation pipeline, from a WAHA webhook POST to
//! ingress until the bot's reply is published as `message.ready` on Redis pub/sub — the real
//! `ingress` and `worker` binaries (taken from beside this one), a fresh database, the local
//! Redis. By default every message opens a new conversation (a new contact and session), the
//! costlier path; with `--conversations N`, N customers write in turn, their first messages sent
//! as an unmeasured warm-up, so every measured message is a follow-up in an open session, and
//! `--new-every K` mixes the two: every K-th measured message comes from a new customer. The
//! load is open-loop: latency counts from each message's scheduled send time, so a stall is not
//! hidden by the generator slowing down. It also reports the CPU time each process spent on the
//! measured messages (from /proc: ingress, the workers, the whole Postgres cluster behind
//! `--admin-url`, Redis from `INFO cpu`, and the generator itself), which is steadier than
//! latency on a shared machine. Figures go to BENCHMARKS.md.
//!
//! cargo build --release --bins && target/release/pipeline-bench --rate 1000 --seconds 10
//! target/release/pipeline-bench --rate 1000 --seconds 10 --conversations 1000
//! target/release/pipeline-bench --rate 1000 --seconds 10 --conversations 1000 --new-every 10
//! target/release/pipeline-bench --rate 1000 --seconds 10 --fsync-probe /var/lib/postgresql
//! target/release/pipeline-bench --rate 1000 --seconds 10 --recycle-wal 400
//! target/release/pipeline-bench --rate 1000 --seconds 10 --runs 5   # p50/p99 of each, medians

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use shared::inboxes::{self, InboxKind, NewInbox};

#[derive(Parser, Debug)]
struct Args {
    /// Offered load: webhooks per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Customers writing in turn (0: every message from a new customer). Their first messages
    /// open the conversations before the measurement starts.
    #[arg(long, default_value_t = 0)]
    conversations: usize,
    /// With `--conversations`: every K-th measured message comes from a new customer instead
    /// (opens a conversation), as when conversations start and go on side by side. 0: none.
    #[arg(long, default_value_t = 0)]
    new_every: usize,
    /// New conversations sent before measuring (connections dialled, plans cached), when
    /// `--conversations` is 0.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Worker processes, and jobs each runs at once.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/1.1 keep-alive connections to ingress.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// A directory on the disk that holds Postgres's WAL (e.g. /var/lib/postgresql): every
    /// 5 ms a probe writes 8 KiB there and fdatasyncs it, and the worst sync of each second is
    /// printed under the p99 of that second — a commit waits on the same disk.
    #[arg(long)]
    fsync_probe: Option<PathBuf>,
    /// Before measuring, write this many MB of WAL and CHECKPOINT, so the cluster holds
    /// recycled WAL segments as one that has carried traffic for a while does. A fresh cluster
    /// has none ahead (nor one that has written more since its last checkpoint than it had
    /// recycled): every 16 MB of WAL then creates a segment, written full of zeros and synced
    /// while every commit waits. The report says how many were created. Needs a superuser
    /// `--admin-url`.
    #[arg(long, default_value_t = 0)]
    recycle_wal: u64,
    #[arg(
        long,
        env = "DATABASE_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    admin_url: String,
    /// Runs in a row, each on a fresh database and fresh processes; with more than one, a last
    /// line gives each run's p50 and p99 and their medians. On a shared VM whose speed drifts
    /// within minutes, the spread of several runs says more than any one.
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

/// One run's latency, in ms.
struct Latency {
    p50: f64,
    p99: f64,
}

/// When each message was due, and when its bot reply was seen.
#[derive(Default)]
struct Clock {
    due: HashMap<String, Instant>,
    inbound: HashMap<String, String>,
    replied: HashMap<String, Instant>,
}

// One runtime thread: the generator shares the two cores with what it measures, and its tasks
// waking each other across threads cost it 15–20 % more CPU (BENCHMARKS.md, "Unix sockets…").
// Multi-threaded all the same, because the migrations block in place.
#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runs = Vec::with_capacity(args.runs);
    for index in 0..args.runs.max(1) {
        if args.runs > 1 {
            println!("--- run {} of {}", index + 1, args.runs);
        }
        let run = ulid::Ulid::new().to_string().to_lowercase();
        let db_name = format!("pipeline_bench_{run}");
        let db_url = create_database(&args.admin_url, &db_name).await?;
        let result = bench(&args, &run, &db_url).await;
        drop_database(&args.admin_url, &db_name).await;
        runs.push(result?);
    }
    if runs.len() > 1 {
        summarise(&runs);
    }
    Ok(())
}

/// Each run's p50 and p99, and their medians.
fn summarise(runs: &[Latency]) {
    let list = |f: fn(&Latency) -> f64| {
        runs.iter()
            .map(|r| format!("{:.1}", f(r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let median = |f: fn(&Latency) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        if values.len().is_multiple_of(2) {
            (values[mid - 1] + values[mid]) / 2.0
        } else {
            values[mid]
        }
    };
    println!(
        "{} runs: p50 {} ms (median {:.1}); p99 {} ms (median {:.1})",
        runs.len(),
        list(|r| r.p50),
        median(|r| r.p50),
        list(|r| r.p99),
        median(|r| r.p99)
    );
}

async fn bench(args: &Args, run: &str, db_url: &str) -> anyhow::Result<Latency> {
    shared::db::migrate(db_url).await.context("migrations")?;
    let pool = shared::db::pool(db_url, 2)?;
    let tenant = inboxes::create_tenant(&pool, "Bench").await?;
    let mut inbox = NewInbox::new(&tenant, InboxKind::Waha, "bench");
    inbox.waha_session = Some("default".into());
    let inbox = inboxes::create_inbox(&pool, &inbox).await?;
    let prefix = format!("bench_{run}");
    let broadcast = format!("{prefix}:");
    let port = free_port()?;
    let env = vec![
        ("REDIS_URL", args.redis_url.clone()),
        ("DATABASE_URL", db_url.to_owned()),
        ("SWITCHYARD_PREFIX", prefix.clone()),
        ("BROADCAST_PREFIX", broadcast.clone()),
        ("PORT", port.to_string()),
        ("RUST_LOG", "error".into()),
    ];
    let mut children = vec![spawn("ingress", &[], &env)?];
    let queue_arg = format!("--concurrency={}", args.concurrency);
    for _ in 0..args.workers {
        children.push(spawn(
            "worker",
            &["--queue=whatsapp-messages", &queue_arg],
            &env,
        )?);
    }
    let clock = Arc::new(Mutex::new(Clock::default()));
    let channel = format!("{broadcast}private-tenant.{tenant}.messages");
    let listener = listen(&args.redis_url, &channel, clock.clone()).await?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_ready(addr).await?;
    let target = Target {
        addr,
        inbox: &inbox,
    };
    // Unmeasured: warms the processes up (pools, cached plans) and, with `--conversations`,
    // opens every conversation, so that each measured message is a follow-up.
    let warmup = match args.conversations {
        // Customers the measured phase never uses.
        0 => Phase {
            tag: "warm",
            count: args.warmup,
            conversations: 0,
            first_customer: 90_000_000,
            new_every: 0,
        },
        n => Phase {
            tag: "open",
            count: n,
            conversations: n,
            first_customer: 0,
            new_every: 0,
        },
    };
    if warmup.count > 0 {
        let sent = load(args, &target, &warmup, run, clock.clone()).await?;
        wait_replies(&clock, sent).await;
        *clock.lock().unwrap() = Clock::default();
    }
    let mut admin = AsyncPgConnection::establish(&args.admin_url).await?;
    if args.recycle_wal > 0 {
        wal::recycle(&mut admin, args.recycle_wal).await?;
    }
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    let mut meter = cpu::Meter::new(&args.admin_url, &args.redis_url, pids).await?;
    // The raw limits, in this run, on the same machine state, while the fleet idles.
    let raw_postgres = raw::postgres(db_url, &mut meter).await?;
    let raw_redis = raw::redis(&args.redis_url, &prefix).await?;
    let wal_before = wal::Sample::take(&mut admin).await?;
    let before = meter.sample().await?;
    let total = (args.rate * args.seconds) as usize;
    println!(
        "offering {} webhooks/s for {} s ({total} messages, {}), {} worker(s) x {} concurrency",
        args.rate,
        args.seconds,
        match args.conversations {
            0 => "each a new conversation".to_owned(),
            n => match args.new_every {
                0 => format!("follow-ups in {n} open conversations"),
                1 => format!("each a new conversation, {n} more open"),
                k => format!(
                    "every {k}th from a new customer, the others follow-ups in {n} open conversations"
                ),
            },
        },
        args.workers,
        args.concurrency
    );
    let phase = Phase {
        tag: "msg",
        count: total,
        conversations: args.conversations,
        first_customer: 0,
        new_every: args.new_every,
    };
    let probe = match &args.fsync_probe {
        Some(dir) => Some(fsync_probe::Probe::start(dir, run)?),
        None => None,
    };
    let sent = load(args, &target, &phase, run, clock.clone()).await?;
    wait_replies(&clock, sent).await;
    let syncs = probe.map(fsync_probe::Probe::finish);
    let after = meter.sample().await?;
    let wal_after = wal::Sample::take(&mut admin).await?;
    listener.abort();
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let latency = report(&clock.lock().unwrap(), sent);
    if let (Some(syncs), Some(dir)) = (syncs, &args.fsync_probe) {
        fsync_probe::report(&clock.lock().unwrap(), &syncs, dir);
    }
    cpu::report(&before, &after, sent);
    wal::report(&wal_before, &wal_after, sent);
    println!("raw limits, same run (before the measurement): {raw_postgres}; {raw_redis}");
    cleanup_redis(&args.redis_url, &prefix).await;
    Ok(latency)
}

/// Where webhooks go.
struct Target<'a> {
    addr: SocketAddr,
    inbox: &'a str,
}

/// A run of webhooks: `count` messages, from `conversations` customers in turn (0: each from a
/// new one), numbered from `first_customer`, every `new_every`-th from a new one instead (0:
/// none); `tag` keeps provider message ids of different phases apart.
struct Phase {
    tag: &'static str,
    count: usize,
    conversations: usize,
    first_customer: usize,
    new_every: usize,
}

/// Customers no phase writes as anyone else: the mix's new ones.
const NEW_CUSTOMERS_FROM: usize = 50_000_000;

/// Sends a phase's webhooks at `rate` per second on a fixed schedule over keep-alive connections.
async fn load(
    args: &Args,
    target: &Target<'_>,
    phase: &Phase,
    run: &str,
    clock: Arc<Mutex<Clock>>,
) -> anyhow::Result<usize> {
    let total = phase.count;
    let (tx, rx) = async_channel(total);
    let mut senders = Vec::new();
    for _ in 0..args.connections {
        let rx = rx.clone();
        let path = format!("/webhooks/waha/{}", target.inbox);
        let addr = target.addr;
        senders.push(tokio::spawn(
            async move { connection(addr, path, rx).await },
        ));
    }
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let id = format!("false_{}{i}@c.us_{run}", phase.tag);
        let customer = match (phase.conversations, phase.new_every) {
            (0, _) => phase.first_customer + i,
            (_, k) if k > 0 && i % k == 0 => NEW_CUSTOMERS_FROM + i,
            (n, _) => phase.first_customer + i % n,
        };
        clock.lock().unwrap().due.insert(id.clone(), due);
        tx.send((id, customer)).await.ok();
    }
    drop(tx);
    let mut failures = 0;
    for s in senders {
        failures += s.await.unwrap_or(0);
    }
    println!(
        "{}: sent {total} in {:.1} s ({failures} refused)",
        phase.tag,
        start.elapsed().as_secs_f64()
    );
    Ok(total - failures)
}

/// Waits (at most a minute) until `sent` bot replies were seen.
async fn wait_replies(clock: &Mutex<Clock>, sent: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while clock.lock().unwrap().replied.len() < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Queue = Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(String, usize)>>>;

fn async_channel(n: usize) -> (tokio::sync::mpsc::Sender<(String, usize)>, Queue) {
    let (tx, rx) = tokio::sync::mpsc::channel(n.max(1));
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

/// One keep-alive connection posting whatever is due; returns how many were refused.
async fn connection(addr: SocketAddr, path: String, queue: Queue) -> usize {
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return 0;
    };
    tokio::spawn(conn);
    let mut refused = 0;
    loop {
        let next = queue.lock().await.recv().await;
        let Some((id, customer)) = next else {
            return refused;
        };
        let body = webhook(&id, customer);
        let request = Request::post(path.as_str())
            .header("host", "bench")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        match sender.send_request(request).await {
            Ok(response) if response.status().is_success() => {
                let _ = response.into_body().collect().await;
            }
            _ => refused += 1,
        }
    }
}

/// A WAHA text message from customer number `customer`.
fn webhook(id: &str, customer: usize) -> String {
    json!({
        "event": "message", "session": "default",
        "payload": {"id": id, "from": format!("49151{customer:08}@c.us"), "fromMe": false, "body": "hello"}
    })
    .to_string()
}

/// Records when each bot reply's `message.ready` arrives.
async fn listen(
    redis_url: &str,
    channel: &str,
    clock: Arc<Mutex<Clock>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let client = redis::Client::open(redis_url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(tokio::spawn(async move {
        let mut stream = pubsub.into_on_message();
        while let Some(msg) = stream.next().await {
            let at = Instant::now();
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<Value>(&payload) else {
                continue;
            };
            let message = &event["data"]["data"]["message"];
            let mut clock = clock.lock().unwrap();
            match message["sender_type"].as_str() {
                Some("customer") => {
                    if let (Some(provider), Some(id)) = (
                        message["provider_message_id"].as_str(),
                        message["id"].as_str(),
                    ) {
                        clock.inbound.insert(id.to_owned(), provider.to_owned());
                    }
                }
                Some("bot") => {
                    if let Some(provider) = message["payload"]["in_reply_to"]
                        .as_str()
                        .and_then(|m| clock.inbound.get(m).cloned())
                    {
                        clock.replied.entry(provider).or_insert(at);
                    }
                }
                _ => {}
            }
        }
    }))
}

fn report(clock: &Clock, sent: usize) -> Latency {
    let mut latencies: Vec<Duration> = clock
        .replied
        .iter()
        .filter_map(|(id, at)| {
            clock
                .due
                .get(id)
                .map(|due| at.saturating_duration_since(*due))
        })
        .collect();
    latencies.sort();
    let pick = |q: f64| quantile(&latencies, q);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "webhook → bot reply published: {} of {sent} answered; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        ms(pick(0.50)),
        ms(pick(0.90)),
        ms(pick(0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    p99_per_second(clock);
    Latency {
        p50: ms(pick(0.50)),
        p99: ms(pick(0.99)),
    }
}

/// The `q` quantile of `sorted` (zero when empty).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// The p99 of each second of the run (by due time): a tail that comes from one bad second (a
/// stall of the machine, a checkpoint) reads differently from one spread over the run.
fn p99_per_second(clock: &Clock) {
    let Some(start) = clock.due.values().min().copied() else {
        return;
    };
    let mut by_second: HashMap<u64, Vec<Duration>> = HashMap::new();
    for (id, at) in &clock.replied {
        if let Some(due) = clock.due.get(id) {
            by_second
                .entry(due.duration_since(start).as_secs())
                .or_default()
                .push(at.saturating_duration_since(*due));
        }
    }
    let p99 = |mut l: Vec<Duration>| {
        l.sort();
        quantile(&l, 0.99)
    };
    let mut seconds: Vec<(u64, Duration)> = by_second
        .into_iter()
        .map(|(second, latencies)| (second, p99(latencies)))
        .collect();
    seconds.sort();
    let line: Vec<String> = seconds
        .iter()
        .map(|(_, p)| format!("{:.0}", p.as_secs_f64() * 1000.0))
        .collect();
    println!("p99 per second of the run, ms: {}", line.join(" "));
}

/// How long the disk takes to make 8 KiB durable, sampled through the run: the tail's other
/// suspect besides the CPU. On the development VM, seconds whose p99 jumped to 60–130 ms were
/// seconds in which one fdatasync took 50–70 ms (idle, the worst is under 8 ms).
mod fsync_probe {
    use std::{
        fs::OpenOptions,
        os::unix::fs::FileExt,
        path::{Path, PathBuf},
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        thread::JoinHandle,
        time::{Duration, Instant},
    };

    use super::Clock;

    pub struct Probe {
        stop: Arc<AtomicBool>,
        thread: JoinHandle<Vec<(Instant, Duration)>>,
        path: PathBuf,
    }

    impl Probe {
        pub fn start(dir: &Path, run: &str) -> anyhow::Result<Self> {
            let path = dir.join(format!("pipeline-bench-fsync-{run}"));
            let file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&path)?;
            let stop = Arc::new(AtomicBool::new(false));
            let stopped = stop.clone();
            let thread = std::thread::spawn(move || {
                let block = [0x5a_u8; 8192];
                let mut syncs = Vec::new();
                while !stopped.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    if file
                        .write_all_at(&block, 0)
                        .and_then(|_| file.sync_data())
                        .is_err()
                    {
                        break;
                    }
                    syncs.push((at, at.elapsed()));
                    std::thread::sleep(Duration::from_millis(5));
                }
                syncs
            });
            Ok(Self { stop, thread, path })
        }

        /// Each sync: when it started, how long it took.
        pub fn finish(self) -> Vec<(Instant, Duration)> {
            self.stop.store(true, Ordering::Relaxed);
            let syncs = self.thread.join().unwrap_or_default();
            let _ = std::fs::remove_file(&self.path);
            syncs
        }
    }

    /// The worst sync of each second of the run, seconds counted as `p99_per_second` counts them.
    pub fn report(clock: &Clock, syncs: &[(Instant, Duration)], dir: &Path) {
        let Some(start) = clock.due.values().min().copied() else {
            return;
        };
        let seconds = clock
            .due
            .values()
            .map(|due| due.duration_since(start).as_secs() + 1)
            .max()
            .unwrap_or(0);
        let mut worst = vec![Duration::ZERO; seconds as usize];
        for (at, took) in syncs {
            let second = at.saturating_duration_since(start).as_secs() as usize;
            if *at >= start && second < worst.len() {
                worst[second] = worst[second].max(*took);
            }
        }
        let line: Vec<String> = worst
            .iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
            .collect();
        println!(
            "worst fdatasync per second ({}), ms: {}",
            dir.display(),
            line.join(" ")
        );
    }
}

/// What this machine does without the pipeline, measured in the same run: the ceiling each
/// figure above is read against.
mod raw {
    use std::time::{Duration, Instant};

    use diesel::prelude::*;
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    use super::cpu;

    const CONNECTIONS: usize = 16;
    const SENDERS: usize = 64;
    const FOR: Duration = Duration::from_secs(2);

    diesel::table! {
        raw_commits (id) {
            id -> BigInt,
            at -> Timestamptz,
        }
    }

    /// Durable one-row transactions (a prepared INSERT, autocommit) from as many connections as
    /// the worker's pool holds: Postgres's own commit rate here, and its CPU per commit.
    pub async fn postgres(db_url: &str, meter: &mut cpu::Meter) -> anyhow::Result<String> {
        let mut setup = AsyncPgConnection::establish(db_url).await?;
        diesel::sql_query(
            "CREATE TABLE raw_commits (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL)",
        )
        .execute(&mut setup)
        .await?;
        let mut connections = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            connections.push(AsyncPgConnection::establish(db_url).await?);
        }
        let before = meter.sample().await?;
        let started = Instant::now();
        let tasks: Vec<_> = connections
            .into_iter()
            .map(|mut conn| {
                tokio::spawn(async move {
                    let mut commits = 0_u64;
                    while started.elapsed() < FOR {
                        diesel::insert_into(raw_commits::table)
                            .values(raw_commits::at.eq(diesel::dsl::now))
                            .execute(&mut conn)
                            .await?;
                        commits += 1;
                    }
                    // Kept open until sampled: an exiting backend's CPU is in neither the
                    // live processes nor the reaped ones until the postmaster reaps it.
                    anyhow::Ok((commits, conn))
                })
            })
            .collect();
        let mut commits = 0;
        let mut open = Vec::with_capacity(CONNECTIONS);
        for task in tasks {
            let (n, conn) = task.await??;
            commits += n;
            open.push(conn);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let after = meter.sample().await?;
        drop(open);
        diesel::sql_query("DROP TABLE raw_commits")
            .execute(&mut setup)
            .await?;
        Ok(format!(
            "Postgres {:.0} durable one-row commits/s over {CONNECTIONS} connections ({:.3} ms of Postgres CPU each)",
            commits as f64 / elapsed,
            (after.postgres - before.postgres) * 1000.0 / commits.max(1) as f64,
        ))
    }

    /// PUBLISH of a broadcast-sized payload to a channel nobody hears, from many senders over
    /// one multiplexed connection (as the worker sends).
    pub async fn redis(redis_url: &str, prefix: &str) -> anyhow::Result<String> {
        let conn = redis::Client::open(redis_url)?
            .get_multiplexed_async_connection()
            .await?;
        let channel = format!("{prefix}:raw");
        let payload = "x".repeat(600);
        let started = Instant::now();
        let tasks: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (mut conn, channel, payload) = (conn.clone(), channel.clone(), payload.clone());
                tokio::spawn(async move {
                    let mut sent = 0_u64;
                    while started.elapsed() < FOR {
                        let _: i64 = redis::cmd("PUBLISH")
                            .arg(&channel)
                            .arg(&payload)
                            .query_async(&mut conn)
                            .await?;
                        sent += 1;
                    }
                    anyhow::Ok(sent)
                })
            })
            .collect();
        let mut sent = 0;
        for task in tasks {
            sent += task.await??;
        }
        Ok(format!(
            "Redis {:.0} PUBLISH/s from {SENDERS} senders on one connection",
            sent as f64 / started.elapsed().as_secs_f64()
        ))
    }
}

/// What the measured messages wrote to the WAL, and whether its segments had to be created on
/// the way. A backend that fills a segment opens the next one holding the WAL write lock; if no
/// recycled file is there, it writes a new 16 MB file full of zeros and syncs it first, and every
/// commit waits meanwhile (on the development VM: 20–40 ms, about every 2.4 s at 1,000
/// follow-ups/s, watched in `pg_wal`). Postgres recycles old segments at each checkpoint (up to
/// `max_wal_size` worth, by the WAL of recent checkpoint cycles, never fewer than
/// `min_wal_size`), so a cluster under steady traffic seldom creates one; a new one (one
/// segment, as on a fresh machine) creates them all.
mod wal {
    use diesel::{QueryableByName, sql_types::BigInt};
    use diesel_async::{AsyncPgConnection, RunQueryDsl};

    pub struct Sample {
        /// The WAL segment the next record goes to.
        segment: i64,
        /// WAL files already there beyond it (recycled, ready to be written).
        ahead: i64,
        bytes: i64,
        full_page_images: i64,
        syncs: i64,
        wal_buffers_full: i64,
    }

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        segment: i64,
        #[diesel(sql_type = BigInt)]
        ahead: i64,
        #[diesel(sql_type = BigInt)]
        bytes: i64,
        #[diesel(sql_type = BigInt)]
        full_page_images: i64,
        #[diesel(sql_type = BigInt)]
        syncs: i64,
        #[diesel(sql_type = BigInt)]
        wal_buffers_full: i64,
    }

    impl Sample {
        pub async fn take(admin: &mut AsyncPgConnection) -> anyhow::Result<Self> {
            let row: Row = diesel::sql_query(
                "WITH here AS (
                   SELECT pg_current_wal_insert_lsn() AS lsn,
                          pg_walfile_name(pg_current_wal_insert_lsn()) AS file,
                          (SELECT setting::bigint FROM pg_settings
                            WHERE name = 'wal_segment_size') AS segment_size)
                 SELECT (here.lsn - '0/0'::pg_lsn)::bigint / here.segment_size AS segment,
                        (SELECT count(*) FROM pg_ls_waldir()
                          WHERE name ~ '^[0-9A-F]{24}$' AND name > here.file) AS ahead,
                        (here.lsn - '0/0'::pg_lsn)::bigint AS bytes,
                        w.wal_fpi AS full_page_images, w.wal_sync AS syncs,
                        w.wal_buffers_full
                   FROM here, pg_stat_wal w",
            )
            .get_result(admin)
            .await?;
            Ok(Self {
                segment: row.segment,
                ahead: row.ahead,
                bytes: row.bytes,
                full_page_images: row.full_page_images,
                syncs: row.syncs,
                wal_buffers_full: row.wal_buffers_full,
            })
        }
    }

    /// Writes `mb` MB of WAL (logical messages: no table grows) and checkpoints, which recycles
    /// the segments that WAL filled into segments ahead.
    pub async fn recycle(admin: &mut AsyncPgConnection, mb: u64) -> anyhow::Result<()> {
        for _ in 0..mb {
            diesel::sql_query(
                "SELECT pg_logical_emit_message(false, 'pipeline-bench', repeat('x', 1048576))",
            )
            .execute(admin)
            .await?;
        }
        diesel::sql_query("CHECKPOINT").execute(admin).await?;
        Ok(())
    }

    pub fn report(before: &Sample, after: &Sample, messages: usize) {
        let bytes = after.bytes - before.bytes;
        let per_message = |n: i64| n as f64 / messages.max(1) as f64;
        let filled = after.segment - before.segment;
        let created = (filled - before.ahead).max(0);
        println!(
            "WAL: {:.1} MB ({:.1} KB per message, {:.2} full-page images per message), {} syncs, {} waits for a full WAL buffer; {filled} segment(s) filled, {} ready ahead, so {created} created during the run",
            bytes as f64 / 1e6,
            per_message(bytes) / 1e3,
            per_message(after.full_page_images - before.full_page_images),
            after.syncs - before.syncs,
            after.wal_buffers_full - before.wal_buffers_full,
            before.ahead,
        );
    }
}

fn spawn(binary: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<Child> {
    let path: PathBuf = std::env::current_exe()?.with_file_name(binary);
    let mut command = Command::new(&path);
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .spawn()
        .with_context(|| format!("starting {}", path.display()))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_ready(addr: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("ingress did not start")
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut admin = AsyncPgConnection::establish(admin_url)
        .await
        .context("postgres")?;
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let base = &admin_url[..admin_url.rfind('/').context("admin url has a path")?];
    Ok(format!("{base}/{name}"))
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut admin) = AsyncPgConnection::establish(admin_url).await {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

async fn cleanup_redis(redis_url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}

/// CPU time of the processes the pipeline runs on, read before and after the measured phase.
mod cpu {
    use anyhow::Context;
    use diesel::{QueryableByName, sql_types::BigInt};
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    /// Linux reports /proc times in USER_HZ, 100 per second on every platform Rust targets.
    const TICKS_PER_SECOND: f64 = 100.0;

    /// CPU seconds used so far.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Sample {
        pub ingress: f64,
        pub workers: f64,
        pub postgres: f64,
        /// The part of `postgres` spent by the client connections' backends.
        pub pg_backends: f64,
        /// The part spent by children that exited meanwhile (autovacuum workers come and go).
        pub pg_exited: f64,
        pub redis: f64,
        pub bench: f64,
        /// Connections Postgres accepted (`pg_stat_database.sessions`, all databases).
        pub pg_sessions: i64,
    }

    pub struct Meter {
        admin: AsyncPgConnection,
        redis: redis::aio::MultiplexedConnection,
        postmaster: u32,
        /// ingress first, then the workers.
        children: Vec<u32>,
    }

    #[derive(QueryableByName)]
    struct Number {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    impl Meter {
        pub async fn new(
            admin_url: &str,
            redis_url: &str,
            children: Vec<u32>,
        ) -> anyhow::Result<Self> {
            let mut admin = AsyncPgConnection::establish(admin_url).await?;
            let backend: Number = diesel::sql_query("SELECT pg_backend_pid()::bigint AS n")
                .get_result(&mut admin)
                .await?;
            // The admin connection's backend is a child of the postmaster, so this works for
            // any local cluster without knowing its data directory.
            let postmaster = stat(backend.n as u32)
                .map(|s| s.ppid)
                .context("reading the Postgres backend's /proc entry (is Postgres local?)")?;
            let redis = redis::Client::open(redis_url)?
                .get_multiplexed_async_connection()
                .await?;
            Ok(Self {
                admin,
                redis,
                postmaster,
                children,
            })
        }

        pub async fn sample(&mut self) -> anyhow::Result<Sample> {
            let own = |pid: u32| stat(pid).map(|s| s.own).unwrap_or_default();
            let info: String = redis::cmd("INFO")
                .arg("cpu")
                .query_async(&mut self.redis)
                .await?;
            let redis = info
                .lines()
                .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
                .sum();
            let cluster = cluster(self.postmaster);
            let sessions: Number = diesel::sql_query(
                "SELECT COALESCE(SUM(sessions), 0)::bigint AS n FROM pg_stat_database",
            )
            .get_result(&mut self.admin)
            .await?;
            Ok(Sample {
                ingress: own(self.children[0]),
                workers: self.children[1..].iter().map(|&p| own(p)).sum(),
                postgres: cluster.total,
                pg_backends: cluster.backends,
                pg_exited: cluster.exited,
                redis,
                bench: own(std::process::id()),
                pg_sessions: sessions.n,
            })
        }
    }

    struct Stat {
        ppid: u32,
        /// utime + stime, seconds.
        own: f64,
        /// cutime + cstime: children that exited and were reaped, seconds.
        reaped: f64,
    }

    fn stat(pid: u32) -> Option<Stat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces), from field 3 (state) on.
        let fields: Vec<&str> = text[text.rfind(')')? + 2..].split(' ').collect();
        let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
        Some(Stat {
            ppid: fields.get(1)?.parse().ok()?,
            own: (ticks(11)? + ticks(12)?) / TICKS_PER_SECOND,
            reaped: (ticks(13)? + ticks(14)?) / TICKS_PER_SECOND,
        })
    }

    /// CPU seconds of a Postgres cluster, in all and by kind of process.
    struct Cluster {
        total: f64,
        backends: f64,
        exited: f64,
    }

    /// The whole cluster: the postmaster, its live children (backends, WAL writer,
    /// checkpointer, autovacuum…) and the children it already reaped.
    fn cluster(postmaster: u32) -> Cluster {
        let (own, exited) = stat(postmaster)
            .map(|s| (s.own, s.reaped))
            .unwrap_or_default();
        let mut total = own + exited;
        let mut backends = 0.0;
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                if let Some(s) = stat(pid).filter(|s| s.ppid == postmaster) {
                    total += s.own + s.reaped;
                    if is_backend(pid) {
                        backends += s.own;
                    }
                }
            }
        }
        Cluster {
            total,
            backends,
            exited,
        }
    }

    /// A client connection's backend (its title names a client address), not an auxiliary
    /// process (WAL writer, checkpointer, autovacuum…).
    fn is_backend(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|title| title.contains('(') || title.contains("[local]"))
    }

    /// CPU seconds per 1,000 messages, per process, over the measured phase.
    pub fn report(before: &Sample, after: &Sample, messages: usize) {
        let per_k = |b: f64, a: f64| (a - b) * 1000.0 / messages.max(1) as f64;
        let postgres = per_k(before.postgres, after.postgres);
        let workers = per_k(before.workers, after.workers);
        let ingress = per_k(before.ingress, after.ingress);
        let redis = per_k(before.redis, after.redis);
        println!(
            "Postgres by process: backends {:.2}, exited children (autovacuum workers) {:.2}, other auxiliaries {:.2}",
            per_k(before.pg_backends, after.pg_backends),
            per_k(before.pg_exited, after.pg_exited),
            postgres
                - per_k(before.pg_backends, after.pg_backends)
                - per_k(before.pg_exited, after.pg_exited),
        );
        println!(
            "CPU s per 1,000 messages: postgres {postgres:.2}, worker(s) {workers:.2}, ingress {ingress:.2}, redis {redis:.2} (shared instance), total {:.2}; generator {:.2}; Postgres connections opened: {}",
            postgres + workers + ingress + redis,
            per_k(before.bench, after.bench),
            after.pg_sessions - before.pg_sessions,
        );
    }
}
