//! `pipeline-bench`: end-to-end latency of the conversation pipeline, from a WAHA webhook POST to
//! ingress until the bot's reply is published as `message.ready` on Redis pub/sub — the real
//! `ingress` and `worker` binaries (taken from beside this one), a fresh database, the local
//! Redis. Every message opens a new conversation (a new contact and session), which is the
//! costlier path. The load is open-loop: latency counts from each message's scheduled send time,
//! so a stall is not hidden by the generator slowing down. Figures go to BENCHMARKS.md.
//!
//! cargo build --release --bins && target/release/pipeline-bench --rate 1000 --seconds 10

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
    /// Offered load: webhooks per second, each a new conversation.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
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
    #[arg(
        long,
        env = "DATABASE_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    admin_url: String,
}

/// When each message was due, and when its bot reply was seen.
#[derive(Default)]
struct Clock {
    due: HashMap<String, Instant>,
    inbound: HashMap<String, String>,
    replied: HashMap<String, Instant>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run = ulid::Ulid::new().to_string().to_lowercase();
    let db_name = format!("pipeline_bench_{run}");
    let db_url = create_database(&args.admin_url, &db_name).await?;
    let result = bench(&args, &run, &db_url).await;
    drop_database(&args.admin_url, &db_name).await;
    result
}

async fn bench(args: &Args, run: &str, db_url: &str) -> anyhow::Result<()> {
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
    let total = (args.rate * args.seconds) as usize;
    println!(
        "offering {} webhooks/s for {} s ({total} conversations), {} worker(s) x {} concurrency",
        args.rate, args.seconds, args.workers, args.concurrency
    );
    let sent = load(args, addr, &inbox, run, clock.clone()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while clock.lock().unwrap().replied.len() < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    listener.abort();
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    report(&clock.lock().unwrap(), sent);
    cleanup_redis(&args.redis_url, &prefix).await;
    Ok(())
}

/// Sends `rate × seconds` webhooks on a fixed schedule over keep-alive connections.
async fn load(
    args: &Args,
    addr: SocketAddr,
    inbox: &str,
    run: &str,
    clock: Arc<Mutex<Clock>>,
) -> anyhow::Result<usize> {
    let total = (args.rate * args.seconds) as usize;
    let (tx, rx) = async_channel(total);
    let mut senders = Vec::new();
    for _ in 0..args.connections {
        let rx = rx.clone();
        let path = format!("/webhooks/waha/{inbox}");
        senders.push(tokio::spawn(
            async move { connection(addr, path, rx).await },
        ));
    }
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let id = format!("false_{i}@c.us_{run}");
        clock.lock().unwrap().due.insert(id.clone(), due);
        tx.send((id, i)).await.ok();
    }
    drop(tx);
    let mut failures = 0;
    for s in senders {
        failures += s.await.unwrap_or(0);
    }
    println!(
        "sent {total} in {:.1} s ({failures} refused)",
        start.elapsed().as_secs_f64()
    );
    Ok(total - failures)
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
        let Some((id, i)) = next else { return refused };
        let body = webhook(&id, i);
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

fn webhook(id: &str, i: usize) -> String {
    json!({
        "event": "message", "session": "default",
        "payload": {"id": id, "from": format!("49151{i:08}@c.us"), "fromMe": false, "body": "hello"}
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

fn report(clock: &Clock, sent: usize) {
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
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "webhook → bot reply published: {} of {sent} answered; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        ms(pick(0.50)),
        ms(pick(0.90)),
        ms(pick(0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
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
