//! End to end with the real binaries: the `ingress` binary receives a WAHA webhook and serves
//! the `/api`, the `worker` binary runs the pipeline; Redis, Postgres and a pub/sub subscriber
//! are real. The customer writes, the bot answers (its reply waits on `deliveries`), the same
//! webhook arrives again, the customer asks for an agent, an agent is assigned, replies, closes
//! the case, the CSAT survey goes out and its answer is stored — and the subscriber saw every
//! event on exactly the matrix's channels, in order, with the first webhook's correlation id.
//!
//! The `ingress` binary is taken from beside the `worker` binary (`cargo test --workspace`
//! builds both). If it is missing (`cargo test -p worker` alone), or was built before `/api`
//! was routed, the same code runs in process instead (ingress::App, ingress::api::handle) and
//! the test says so on stderr.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use serde_json::{Value, json};
use shared::{
    config::{Secret, StoreConfig},
    conversation::api_keys::{self, Scope},
    events::Broadcaster,
    testkit::unique,
};
use tokio_util::sync::CancellationToken;

use crate::{
    World, eventually, expected_broadcasts,
    http::{ApiServer, CREATED, Client, send},
};

/// A child process killed (SIGTERM, then SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env(w: &World) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", shared::testkit::redis_url()),
        ("DATABASE_URL", w.db.url.clone()),
        ("SWITCHYARD_PREFIX", w.redis.prefix.clone()),
        ("BROADCAST_PREFIX", w.broadcast_prefix.clone()),
        ("BOT_CACHE_SECS", "0".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

fn spawn(binary: &PathBuf, args: &[&str], vars: &[(&'static str, String)]) -> Proc {
    let mut command = Command::new(binary);
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in vars {
        command.env(k, v);
    }
    Proc(command.spawn().expect("binary starts"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where webhooks go and where the API is served, and what keeps them running.
struct Front {
    webhooks: SocketAddr,
    api: SocketAddr,
    _ingress: Option<Proc>,
    _in_process: Option<(CancellationToken, ApiServer)>,
}

async fn front(w: &World) -> Front {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_worker")).with_file_name("ingress");
    if binary.exists() {
        let port = free_port();
        let mut vars = env(w);
        vars.push(("PORT", port.to_string()));
        let ingress = spawn(&binary, &[], &vars);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        eventually("ingress is ready", || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
                && send(addr, "GET", "/readyz", &[], "").await.status == 200
        })
        .await;
        let probe = send(addr, "GET", "/api/sessions", &[], "").await;
        if probe.body["code"] == "missing_api_key" {
            return Front {
                webhooks: addr,
                api: addr,
                _ingress: Some(ingress),
                _in_process: None,
            };
        }
        eprintln!("e2e: this ingress binary does not route /api yet; serving /api in process");
        let server = api_server(w).await;
        return Front {
            webhooks: addr,
            api: server.addr,
            _ingress: Some(ingress),
            _in_process: Some((CancellationToken::new(), server)),
        };
    }
    eprintln!(
        "e2e: no ingress binary beside {binary:?} (run cargo test --workspace); ingress runs in process"
    );
    let stop = CancellationToken::new();
    let mut config = ingress::Config::new(StoreConfig {
        redis_url: Secret::new(shared::testkit::redis_url()),
        database_url: Secret::new(w.db.url.clone()),
        prefix: w.redis.prefix.clone(),
    });
    config.inbox_cache_ttl = std::time::Duration::ZERO;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = ingress::App::build(config, listener).await.unwrap();
    let webhooks = app.local_addr().unwrap();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    let server = api_server(w).await;
    Front {
        webhooks,
        api: server.addr,
        _ingress: None,
        _in_process: Some((stop, server)),
    }
}

async fn api_server(w: &World) -> ApiServer {
    let broadcaster = Broadcaster::new(w.redis.queues.clone(), w.broadcast_prefix.clone());
    ApiServer::start(ingress::api::Api::with_broadcaster(
        w.db.pool.clone(),
        w.redis.queues.clone(),
        broadcaster,
    ))
    .await
}

fn waha_body(id: &str, text: &str) -> String {
    json!({
        "id": unique("evt"),
        "timestamp": 1763801000123u64,
        "event": "message",
        "session": "default",
        "me": { "id": "4915100000001@c.us", "pushName": "Acme Support" },
        "payload": {
            "id": id, "timestamp": 1763801000, "from": "4915212345678@c.us", "fromMe": false,
            "to": "4915100000001@c.us", "body": text, "hasMedia": false, "ack": 1,
            "_data": { "notifyName": "Maria" }
        },
        "engine": "WEBJS"
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_to_csat_through_the_real_binaries() {
    let w = World::new().await;
    let agent = w.agent("Dana", 2).await;
    let mut conn = w.db.pool.get().await.unwrap();
    let key = api_keys::create(
        &mut conn,
        &Scope::Tenant {
            tenant_id: w.tenant_id.clone(),
        },
        "desk",
    )
    .await
    .unwrap()
    .token;
    drop(conn);
    let subscriber = w.subscribe(&w.tenant_id).await;
    let front = front(&w).await;
    let _worker = spawn(
        &PathBuf::from(env!("CARGO_BIN_EXE_worker")),
        &["--queue=whatsapp-messages", "--concurrency=4"],
        &env(&w),
    );
    let hook = format!("/webhooks/waha/{}", w.inbox_id);
    let correlation = unique("e2e");
    let post = |id: &'static str, text: &'static str, corr: String| {
        let (addr, hook) = (front.webhooks, hook.clone());
        async move {
            let headers = [
                ("content-type", "application/json"),
                ("x-correlation-id", corr.as_str()),
            ];
            send(addr, "POST", &hook, &headers, waha_body(id, text)).await
        }
    };

    // The customer writes; the bot's answer lands on `deliveries`.
    let first = post(
        "false_4915212345678@c.us_A1",
        "Hi, my order #1042 has not arrived yet",
        correlation.clone(),
    )
    .await;
    assert_eq!(
        (first.status, first.body["accepted"].clone()),
        (200, json!(1))
    );
    eventually("the bot's reply is enqueued", || async {
        w.deliveries().await.len() == 1
    })
    .await;
    // The provider delivers the same webhook again.
    let again = post(
        "false_4915212345678@c.us_A1",
        "Hi, my order #1042 has not arrived yet",
        unique("retry"),
    )
    .await;
    assert_eq!(
        (again.status, again.body["duplicates"].clone()),
        (200, json!(1))
    );
    // They ask for an agent: Dana is assigned.
    post(
        "false_4915212345678@c.us_A2",
        "Can I talk to an agent?",
        unique("req"),
    )
    .await;
    let desk = Client::new(front.api, &key);
    let found = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    eventually("the session is live with an assigned case", || {
        let (desk, found) = (desk.clone(), found.clone());
        async move {
            let live = desk.get("/api/sessions?state=live").await;
            let session = live.body["sessions"][0].clone();
            let assigned = session["open_case"]["state"] == "assigned";
            *found.lock().unwrap() = session;
            assigned
        }
    })
    .await;
    let session = found.lock().unwrap().clone();
    let session_id = session["id"].as_str().unwrap().to_owned();
    let case_id = session["open_case"]["id"].as_str().unwrap().to_owned();
    assert_eq!(session["open_case"]["agent_id"], agent.id.as_str());

    // Dana replies, closes the case; the customer's CSAT answer is stored.
    let reply = desk
        .post(
            &format!("/api/sessions/{session_id}/replies"),
            json!({"agent_id": agent.id, "text": "Hi Maria, I'm on it"}),
        )
        .await;
    assert_eq!(reply.status, CREATED, "{:?}", reply.body);
    let closed = desk
        .post(
            &format!("/api/cases/{case_id}/close"),
            json!({"disposition": "parcel_resent", "sentiment": "positive"}),
        )
        .await;
    assert_eq!(closed.status, 200, "{:?}", closed.body);
    let survey = closed.body["csat"]["id"].as_str().unwrap().to_owned();
    let answer = desk
        .post(
            &format!("/api/csat/{survey}/responses"),
            json!({"score": 5}),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        w.count("SELECT 1 FROM csat_surveys WHERE score = 5 AND state = 'responded'")
            .await,
        1
    );

    // One message per webhook, deliveries for the bot (twice), the agent and the survey.
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE direction = 'inbound'")
            .await,
        2
    );
    let senders: Vec<String> = w
        .deliveries()
        .await
        .iter()
        .map(|j| j.payload["sender_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(senders, ["bot", "bot", "agent", "system"]);
    assert_eq!(
        w.event_types().await,
        [
            "session.created",
            "message.ready",
            "message.ready",
            "message.ready",
            "message.ready",
            "message.postback",
            "queue_item.created",
            "session.path_changed",
            "case.created",
            "agent.assigned",
            "case.status_changed",
            "message.reply_ready",
            "case.status_changed",
            "case.closed",
            "session.path_changed",
            "csat.started",
            "message.ready",
            "csat.responded",
        ]
    );
    let events = w.events().await;
    assert!(
        events
            .iter()
            .all(|e| e.envelope.correlation_id == correlation),
        "one correlation id throughout"
    );
    let expected = expected_broadcasts(&w, &events, &session_id, &case_id);
    let seen = subscriber.wait_for(expected.len()).await;
    let seen: Vec<(String, String)> = seen
        .iter()
        .map(|(channel, payload)| {
            (
                channel.clone(),
                payload["data"]["id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen, expected,
        "every event on exactly the matrix's channels, in order"
    );
    assert_eq!(subscriber.settle().await.len(), expected.len());
}
