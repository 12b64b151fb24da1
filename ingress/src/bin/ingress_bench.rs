//! `ingress-bench`: load on `POST /webhooks/waha/{inbox}` with ~1 KB payloads over keep-alive
//! connections on loopback, compared in the same run with `redis-benchmark` XADD at the same
//! concurrency (the raw limit every webhook pays once).
//!
//! It is self-contained: it creates a throwaway Postgres database (migrated, one tenant, one WAHA
//! inbox with an HMAC key) and a throwaway Redis key prefix, runs the real ingress in this process
//! on its own runtime, drives it from another runtime, and deletes both afterwards. Every request
//! carries a fresh message id, so every request stores a job (no duplicates). With `--rate` the
//! load is open-loop and latency counts from each request's scheduled time, so a stall is not
//! hidden by the client waiting for it (no coordinated omission).
//!
//! `cargo run --release -p ingress --bin ingress-bench -- --connections 64 --requests 200000`
//! `cargo run --release -p ingress --bin ingress-bench -- --connections 64 --rate 10000 --seconds 10`

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use hmac::{Hmac, Mac};
use shared::{
    config::{Secret, StoreConfig},
    inboxes::{self, InboxKind, NewInbox},
};
use tokio::sync::Barrier;

#[derive(Parser, Debug)]
#[command(about = "Load-test ingress's WAHA webhook against the raw Redis XADD rate")]
struct Args {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests in all (closed-loop mode).
    #[arg(long, default_value_t = 100_000)]
    requests: usize,
    /// Offered requests per second across all connections (open-loop mode).
    #[arg(long)]
    rate: Option<u64>,
    /// Duration of the open-loop mode.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Redis to use (and to point redis-benchmark at).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// A Postgres database where the bench may create and drop its own database.
    #[arg(
        long,
        env = "BENCH_ADMIN_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    admin_database_url: String,
    /// Worker threads of the server runtime (the rest of the machine drives the load).
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Skip the redis-benchmark comparison.
    #[arg(long)]
    no_redis_benchmark: bool,
}

// The same allocator as the `ingress` binary, so the in-process server performs like it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HMAC_KEY: &str = "bench-hmac-key";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The subscriber the `ingress` binary runs with, so every request pays for its span as in
    // production (RUST_LOG as there; the default logs at info, i.e. one line per refusal).
    let _telemetry = shared::telemetry::init("ingress-bench");
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let db_name = format!(
        "ingress_bench_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let prefix = format!("ingress-bench-{}", ulid::Ulid::new());
    let db_url = control.block_on(create_database(&args.admin_database_url, &db_name))?;
    let result = run(&args, &control, &db_url, &prefix);
    control.block_on(async {
        delete_keys(&args.redis_url, &prefix).await;
        drop_database(&args.admin_database_url, &db_name).await;
    });
    result
}

fn run(
    args: &Args,
    control: &tokio::runtime::Runtime,
    db_url: &str,
    prefix: &str,
) -> anyhow::Result<()> {
    let pool = shared::db::pool(db_url, 2)?;
    let inbox = control.block_on(async {
        let tenant = inboxes::create_tenant(&pool, "bench").await?;
        let mut inbox = NewInbox::new(&tenant, InboxKind::Waha, "bench");
        inbox.waha_hmac_key = Some(HMAC_KEY.into());
        inboxes::create_inbox(&pool, &inbox).await
    })?;
    // Named threads, so `top -H` shows server and load generator apart.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads)
        .thread_name("ingress-server")
        .enable_all()
        .build()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let addr = server.block_on(start_server(args, db_url, prefix, stop.clone()))?;
    let path = format!("/webhooks/waha/{inbox}");
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    // Warm up: connections, caches, the Lua script.
    let warmup = Load::Closed(args.connections * 50);
    client.block_on(drive(addr, &path, "warmup", args.connections, warmup))?;
    let load = match args.rate {
        Some(rate) => Load::Open {
            rate,
            seconds: args.seconds,
        },
        None => Load::Closed(args.requests),
    };
    let redis_pid = redis_pid(&args.redis_url);
    let before = CpuSnapshot::take(redis_pid);
    let report = client.block_on(drive(addr, &path, "run", args.connections, load))?;
    let cpu = CpuSnapshot::take(redis_pid).since(&before);
    stop.cancel();
    drop(server);
    report.print(args);
    cpu.print(report.ok);
    if !args.no_redis_benchmark {
        compare_with_redis(args, prefix, &report);
    }
    Ok(())
}

async fn start_server(
    args: &Args,
    db_url: &str,
    prefix: &str,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let mut config = ingress::Config::new(StoreConfig {
        redis_url: Secret::new(args.redis_url.clone()),
        database_url: Secret::new(db_url.to_owned()),
        prefix: prefix.to_owned(),
    });
    config.dedup_window = Duration::from_secs(600);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = ingress::App::build(config, listener).await?;
    let addr = app.local_addr()?;
    tokio::spawn(app.run_until_stopped(stop));
    Ok(addr)
}

#[derive(Clone, Copy)]
enum Load {
    Closed(usize),
    Open { rate: u64, seconds: u64 },
}

struct Report {
    mode: String,
    ok: usize,
    failed: usize,
    elapsed: Duration,
    /// From the moment each request was handed to the connection, sorted.
    latencies_us: Vec<u64>,
    /// Open loop only: from each request's scheduled time (includes client-side lateness,
    /// such as the pacer running late or the client busy), sorted.
    scheduled_latencies_us: Vec<u64>,
    body_bytes: usize,
}

async fn drive(
    addr: SocketAddr,
    path: &str,
    run: &str,
    connections: usize,
    load: Load,
) -> anyhow::Result<Report> {
    // Bodies are built and signed before the clock starts, so the client's own work stays small.
    let start = Arc::new(Barrier::new(connections + 1));
    let mut tasks = Vec::new();
    let mut pacing = Vec::new();
    for connection in 0..connections {
        let (path, start) = (path.to_owned(), start.clone());
        let bodies = bodies(run, connection, requests_of(load, connection, connections));
        let schedule = match load {
            Load::Closed(_) => None,
            Load::Open { .. } => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                pacing.push(tx);
                Some(rx)
            }
        };
        tasks.push(tokio::spawn(connection_loop(
            addr, path, bodies, schedule, start,
        )));
    }
    start.wait().await;
    let started = Instant::now();
    if let Load::Open { rate, .. } = load {
        let per_connection = requests_of(load, 0, connections);
        std::thread::Builder::new()
            .name("bench-client-pacer".into())
            .spawn(move || pace(pacing, rate, per_connection))?;
    }
    let (mut ok, mut failed, mut latencies_us, mut scheduled_latencies_us) =
        (0, 0, Vec::new(), Vec::new());
    for task in tasks {
        let samples = task.await??;
        ok += samples.ok;
        failed += samples.failed;
        latencies_us.extend(samples.sent);
        scheduled_latencies_us.extend(samples.scheduled);
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    scheduled_latencies_us.sort_unstable();
    let mode = match load {
        Load::Closed(n) => format!("closed loop, {n} requests"),
        Load::Open { rate, seconds } => format!("open loop, {rate} req/s offered for {seconds} s"),
    };
    let body_bytes = waha_body(run, 0, 0).len();
    Ok(Report {
        mode,
        ok,
        failed,
        elapsed,
        latencies_us,
        scheduled_latencies_us,
        body_bytes,
    })
}

/// Open loop: hands each connection its requests' scheduled times, each at that time. A thread
/// of its own sleeps to the microsecond, where tokio's timer would release requests in bursts at
/// its 1 ms ticks; a late pacer shows as latency "from schedule", never as a later schedule.
fn pace(
    connections: Vec<tokio::sync::mpsc::UnboundedSender<Instant>>,
    rate: u64,
    per_connection: usize,
) {
    let start = Instant::now();
    let every = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let count = connections.len();
    for n in 0..per_connection {
        for (index, connection) in connections.iter().enumerate() {
            let at = start + every * (n * count + index) as u32;
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            let _ = connection.send(at);
        }
    }
}

/// How many requests one connection sends.
fn requests_of(load: Load, connection: usize, connections: usize) -> usize {
    match load {
        Load::Closed(n) => n / connections + usize::from(connection < n % connections),
        Load::Open { rate, seconds } => {
            (rate as f64 / connections as f64 * seconds as f64) as usize
        }
    }
}

/// The signed bodies one connection sends: (body, X-Webhook-Hmac).
fn bodies(run: &str, connection: usize, count: usize) -> Vec<(Bytes, String)> {
    (0..count)
        .map(|n| {
            let body = waha_body(run, connection, n);
            let signature = sign(&body);
            (Bytes::from(body), signature)
        })
        .collect()
}

/// One keep-alive connection, spoken to in plain HTTP/1.1 over the socket: requests are written
/// from pre-built bytes and answers are read just far enough to find the status and the end, so
/// the load generator spends as little of the shared CPU as it can (an HTTP client library cost
/// about as much per request as Redis did).
async fn connection_loop(
    addr: SocketAddr,
    path: String,
    bodies: Vec<(Bytes, String)>,
    mut schedule: Option<tokio::sync::mpsc::UnboundedReceiver<Instant>>,
    start: Arc<Barrier>,
) -> anyhow::Result<Samples> {
    use tokio::io::AsyncWriteExt as _;
    let requests: Vec<Vec<u8>> = bodies
        .into_iter()
        .map(|(body, signature)| {
            let mut request = format!(
                "POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n\
                 x-webhook-hmac: {signature}\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(&body);
            request
        })
        .collect();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut buffer = bytes::BytesMut::with_capacity(8192);
    let mut samples = Samples::default();
    start.wait().await;
    for request in &requests {
        let scheduled = match &mut schedule {
            Some(pacer) => pacer.recv().await.context("the pacer stopped early")?,
            None => Instant::now(),
        };
        let sent = Instant::now();
        stream.write_all(request).await?;
        let status = read_response(&mut stream, &mut buffer).await?;
        samples.sent.push(sent.elapsed().as_micros() as u64);
        if schedule.is_some() {
            samples
                .scheduled
                .push(scheduled.elapsed().as_micros() as u64);
        }
        if status == 200 {
            samples.ok += 1;
        } else {
            samples.failed += 1;
        }
    }
    Ok(samples)
}

/// Reads one response (status line, headers, `content-length` bytes of body); returns its status.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut bytes::BytesMut,
) -> anyhow::Result<u16> {
    use bytes::Buf as _;
    use tokio::io::AsyncReadExt as _;
    loop {
        if let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..head_end])?;
            let status: u16 = head
                .get(9..12)
                .and_then(|code| code.parse().ok())
                .context("no status code")?;
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .context("no content-length")?;
            let total = head_end + 4 + length;
            if buffer.len() >= total {
                buffer.advance(total);
                return Ok(status);
            }
        }
        if stream.read_buf(buffer).await? == 0 {
            anyhow::bail!("ingress closed the connection");
        }
    }
}

/// What one connection measured.
#[derive(Default)]
struct Samples {
    ok: usize,
    failed: usize,
    sent: Vec<u64>,
    scheduled: Vec<u64>,
}

/// A WAHA `message` event of about 1 KB with a message id unique to (run, connection, n).
fn waha_body(run: &str, connection: usize, n: usize) -> String {
    let text = "Hi, my order has not arrived yet and the tracking page has said 'in transit' for a week. \
                Could you check with the courier and tell me when it will be delivered? Thanks a lot!";
    format!(
        r#"{{"id":"evt_{connection}_{n}","timestamp":1763801000123,"event":"message","session":"default","metadata":{{}},"me":{{"id":"4915100000001@c.us","pushName":"Acme Support"}},"payload":{{"id":"false_4915212345678@c.us_{run}{connection:04}{n:010}","timestamp":1763801000,"from":"4915212345678@c.us","fromMe":false,"source":"app","to":"4915100000001@c.us","body":"{text} {text}","hasMedia":false,"media":null,"ack":1,"ackName":"SERVER","vCards":[],"_data":{{}}}},"engine":"WEBJS","environment":{{"version":"2025.11.1","engine":"WEBJS","tier":"CORE"}}}}"#
    )
}

fn sign(body: &str) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(HMAC_KEY.as_bytes())
        .unwrap_or_else(|_| unreachable!());
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Report {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p` quantile of sorted microsecond samples, in milliseconds.
    fn percentile(sorted: &[u64], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index] as f64 / 1000.0
    }

    fn print_latency(label: &str, sorted: &[u64]) {
        println!(
            "  latency {label}: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            Self::percentile(sorted, 0.50),
            Self::percentile(sorted, 0.99),
            Self::percentile(sorted, 0.999),
            Self::percentile(sorted, 1.0)
        );
    }

    fn print(&self, args: &Args) {
        println!(
            "ingress POST /webhooks/waha/{{inbox}} ({} B body, HMAC-SHA512 signed)",
            self.body_bytes
        );
        println!(
            "  {}; {} connections; {} server threads",
            self.mode, args.connections, args.server_threads
        );
        println!(
            "  {} ok, {} failed in {:.2} s = {:.0} req/s",
            self.ok,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.rate()
        );
        Self::print_latency("from send", &self.latencies_us);
        if !self.scheduled_latencies_us.is_empty() {
            Self::print_latency("from schedule", &self.scheduled_latencies_us);
        }
    }
}

/// CPU seconds (user + system) used so far by the server's threads, the load generator's threads
/// and redis-server: CPU per request stays meaningful even when other work shares the machine.
#[derive(Default)]
struct CpuSnapshot {
    server: f64,
    client: f64,
    redis: f64,
}

/// Linux's USER_HZ: /proc times are in 1/100 s on every mainstream architecture.
const TICKS_PER_SECOND: f64 = 100.0;

impl CpuSnapshot {
    fn take(redis_pid: Option<u32>) -> Self {
        let mut snapshot = Self::default();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return snapshot;
        };
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let cpu = stat_cpu(&task.path().join("stat")).unwrap_or(0.0);
            if comm.starts_with("ingress-server") {
                snapshot.server += cpu;
            } else if comm.starts_with("bench-client") {
                snapshot.client += cpu;
            }
        }
        let redis_stat = redis_pid.map(|pid| std::path::PathBuf::from(format!("/proc/{pid}/stat")));
        snapshot.redis = redis_stat.and_then(|path| stat_cpu(&path)).unwrap_or(0.0);
        snapshot
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            server: self.server - before.server,
            client: self.client - before.client,
            redis: self.redis - before.redis,
        }
    }

    fn print(&self, requests: usize) {
        let per = |seconds: f64| seconds * 1e6 / requests.max(1) as f64;
        println!(
            "  CPU per request: ingress {:.0} µs, load generator {:.0} µs, redis-server {:.0} µs",
            per(self.server),
            per(self.client),
            per(self.redis)
        );
    }
}

/// utime + stime of a /proc `stat` file, in seconds.
fn stat_cpu(path: &std::path::Path) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3, `state`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / TICKS_PER_SECOND)
}

/// The pid of the Redis server, when it runs on this machine.
fn redis_pid(redis_url: &str) -> Option<u32> {
    let client = redis::Client::open(redis_url).ok()?;
    let mut conn = client.get_connection().ok()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// Runs `redis-benchmark` at the same concurrency: plain XADD with a tiny and a 1 KB field (the
/// limit the issue names), and EVALSHA of the queue's own enqueue-unless-duplicate script with a
/// ~1 KB job and a fresh dedup key per call (the Redis work one webhook really costs).
fn compare_with_redis(args: &Args, prefix: &str, report: &Report) {
    let Ok(url) = url::Url::parse(&args.redis_url) else {
        return;
    };
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port().unwrap_or(6379).to_string();
    let clients = args.connections.to_string();
    let stream = format!("{prefix}:{{redis-benchmark}}:stream");
    let dedup = format!("{prefix}:{{redis-benchmark}}:dedup:__rand_int__");
    let kilobyte = "v".repeat(1024);
    let sha = load_enqueue_script(&args.redis_url).unwrap_or_default();
    let runs: [(&str, Vec<&str>); 3] = [
        ("XADD, tiny field", vec!["XADD", &stream, "*", "f", "v"]),
        (
            "XADD, 1 KB field",
            vec!["XADD", &stream, "*", "f", &kilobyte],
        ),
        (
            "EVALSHA enqueue_unique.lua, one 1 KB job per call",
            vec![
                "EVALSHA", &sha, "2", &stream, &dedup, "600000", "job-id", &kilobyte,
            ],
        ),
    ];
    for (label, command) in runs {
        let mut argv = vec![
            "-h",
            &host,
            "-p",
            &port,
            "-c",
            &clients,
            "-n",
            "200000",
            "-r",
            "1000000000",
            "-q",
        ];
        argv.extend(command);
        let Ok(output) = std::process::Command::new("redis-benchmark")
            .args(&argv)
            .output()
        else {
            println!("redis-benchmark not found: skipping the comparison");
            return;
        };
        let text = String::from_utf8_lossy(&output.stdout);
        match parse_rate(&text) {
            Some(rate) => println!(
                "redis-benchmark -c {clients} -n 200000 {label}: {rate:.0} req/s; ingress reaches {:.0}%",
                100.0 * report.rate() / rate
            ),
            None => println!("could not read redis-benchmark output for {label}: {text}"),
        }
    }
}

/// SCRIPT LOAD of the queue's enqueue-unless-duplicate script; returns its SHA.
fn load_enqueue_script(redis_url: &str) -> Option<String> {
    let script = include_str!("../../../shared/src/queue/lua/enqueue_unique.lua");
    let client = redis::Client::open(redis_url).ok()?;
    let mut conn = client.get_connection().ok()?;
    redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(script)
        .query(&mut conn)
        .ok()
}

/// The last `<number> requests per second` in redis-benchmark's output.
fn parse_rate(output: &str) -> Option<f64> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.contains("requests per second"))?;
    let before = line.split(" requests per second").next()?;
    before
        .rsplit([' ', '\r', ':'])
        .find(|s| !s.is_empty())?
        .parse()
        .ok()
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut admin = AsyncPgConnection::establish(admin_url)
        .await
        .context("BENCH_ADMIN_DATABASE_URL")?;
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let base = &admin_url[..admin_url
        .rfind('/')
        .context("the admin url names a database")?];
    let url = format!("{base}/{name}");
    shared::db::migrate(&url).await?;
    Ok(url)
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut admin) = AsyncPgConnection::establish(admin_url).await {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

/// Deletes every key under the bench's prefix (streams and dedup keys).
async fn delete_keys(redis_url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await
        else {
            return;
        };
        if !keys.is_empty() {
            let _ = redis::cmd("UNLINK")
                .arg(keys)
                .query_async::<()>(&mut conn)
                .await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_redis_benchmark_rates() {
        let quiet = "XADD k * f v: 118203.30 requests per second, p50=0.263 msec\n";
        assert_eq!(parse_rate(quiet), Some(118203.30));
        let progress = "XADD k * f v: rps=0.0 (overall: nan) avg_msec=nan\rXADD k * f v: 97560.98 requests per second, p50=0.3 msec";
        assert_eq!(parse_rate(progress), Some(97560.98));
        assert!(waha_body("run", 63, 9_999_999).len() > 800);
    }
}
