//! End to end with the real binaries: the `ingress` binary receives a WAHA webhook and serves
//! the `/api`, the `worker` binary runs the pipeline; Redis, Postgres and a pub/sub subscriber
//! are real. The customer writes, the bot answers (its reply waits on `deliveries`), the same
//! webhook arrives again, the customer asks for an agent, an agent is assigned, replies, closes
//! the case, the CSAT survey goes out and its answer is stored — and the subscriber saw every
//! event on exactly the matrix's channels, in order, with the first webhook's correlation id.
//! Then a second `worker` runs `deliveries` against a loopback WAHA stand-in (`WAHA_BASE_URL`,
//! `WAHA_API_KEY`): every reply — the bot's two, the agent's, the CSAT survey — is POSTed to
//! `/api/sendText` exactly once with WAHA's documented body and key; WAHA's `message.ack` (READ)
//! webhooks, signed with the inbox's HMAC key, go through the ingress binary and every reply
//! ends `read`, with one `message.read` each, broadcast on exactly the matrix's channels.
//! And a worker binary stopped by SIGTERM cleans up its last jobs' outbox rows before it exits.
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
    Subscriber, World, eventually, expected_broadcasts,
    http::{ApiServer, CREATED, Client, send},
};

// The WAHA / Graph API stand-in of shared's channel tests; not every part is used here.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../../../shared/tests/channels/standin.rs"]
mod standin;
use standin::{Reply, StandIn};

/// The inbox's WAHA webhook HMAC key: every webhook below is signed with it.
const HMAC_KEY: &str = "e2e-waha-hmac-key";

/// Hex HMAC-SHA512 of `body` (RFC 2104), as WAHA signs its webhooks (`X-Webhook-Hmac`).
fn waha_signature(body: &str) -> String {
    use sha2::{Digest, Sha512};
    const BLOCK: usize = 128;
    let mut key = [0u8; BLOCK];
    key[..HMAC_KEY.len()].copy_from_slice(HMAC_KEY.as_bytes());
    let pad = |byte: u8| key.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha512::new()
        .chain_update(pad(0x36))
        .chain_update(body.as_bytes())
        .finalize();
    hex::encode(
        Sha512::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize(),
    )
}

/// WAHA's `message.ack` webhook for our message `id` (fixture waha-message-ack.json).
fn waha_ack_body(id: &str, ack: i64) -> String {
    json!({
        "id": unique("evt"),
        "timestamp": 1763801042000u64,
        "event": "message.ack",
        "session": "default",
        "me": { "id": "4915100000001@c.us", "pushName": "Acme Support" },
        "payload": {
            "id": id, "from": "4915100000001@c.us", "fromMe": true,
            "to": "4915212345678@c.us", "ack": ack, "ackName": "READ"
        },
        "engine": "WEBJS"
    })
    .to_string()
}

/// A child process killed (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Proc(pub(crate) Child);

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

pub(crate) fn env(w: &World) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", shared::testkit::redis_url()),
        ("DATABASE_URL", w.db.url.clone()),
        ("SWITCHYARD_PREFIX", w.redis.prefix.clone()),
        ("BROADCAST_PREFIX", w.broadcast_prefix.clone()),
        ("BOT_CACHE_SECS", "0".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

pub(crate) fn spawn(binary: &PathBuf, args: &[&str], vars: &[(&'static str, String)]) -> Proc {
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

/// The `ingress` binary at `binary` with `vars` on a free port, once it answers `/readyz`.
async fn start_ingress(
    binary: &PathBuf,
    mut vars: Vec<(&'static str, String)>,
) -> (Proc, SocketAddr) {
    let port = free_port();
    vars.push(("PORT", port.to_string()));
    let ingress = spawn(binary, &[], &vars);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    eventually("ingress is ready", || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
            && send(addr, "GET", "/readyz", &[], "").await.status == 200
    })
    .await;
    (ingress, addr)
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
        let (ingress, addr) = start_ingress(&binary, env(w)).await;
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
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE inboxes SET waha_hmac_key = '{HMAC_KEY}' WHERE id = '{}'",
            w.inbox_id
        )),
        &mut conn,
    )
    .await
    .unwrap();
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
            let body = waha_body(id, text);
            let signature = waha_signature(&body);
            let headers = [
                ("content-type", "application/json"),
                ("x-correlation-id", corr.as_str()),
                ("x-webhook-hmac", signature.as_str()),
                ("x-webhook-hmac-algorithm", "sha512"),
            ];
            send(addr, "POST", &hook, &headers, body).await
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

    // Every reply reaches WAHA, exactly once: a worker for `deliveries` with the deployment's
    // WAHA server (the inbox stores no outbound settings of its own).
    let waha = StandIn::start().await;
    let staged = w.deliveries().await;
    for n in 0..staged.len() {
        waha.reply(Reply::json(
            201,
            json!({"id": format!("true_4915212345678@c.us_3EB0OUT{n}")}),
        ));
    }
    let api_key = unique("waha-key");
    let mut vars = env(&w);
    vars.push(("WAHA_BASE_URL", waha.base.to_string()));
    vars.push(("WAHA_API_KEY", api_key.clone()));
    let _sender = spawn(
        &PathBuf::from(env!("CARGO_BIN_EXE_worker")),
        &["--queue=deliveries", "--concurrency=2"],
        &vars,
    );
    let outbound = "SELECT 1 FROM messages WHERE direction = 'outbound'";
    eventually("every reply is accepted by WAHA", || async {
        w.count(&format!("{outbound} AND status = 'sent'")).await == 4
    })
    .await;
    let mut sent_texts: Vec<String> = waha
        .requests()
        .iter()
        .map(|r| {
            assert_eq!(
                (r.method.as_str(), r.path.as_str()),
                ("POST", "/api/sendText")
            );
            assert_eq!(r.header("x-api-key"), Some(api_key.as_str()));
            assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
            let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 3, "session, chatId, text: {:?}", r.body);
            assert_eq!(r.body["session"], "default");
            assert_eq!(r.body["chatId"], "4915212345678@c.us");
            r.body["text"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut staged_texts: Vec<String> = staged
        .iter()
        .map(|j| j.payload["text"].as_str().unwrap().to_owned())
        .collect();
    sent_texts.sort();
    staged_texts.sort();
    assert_eq!(sent_texts, staged_texts, "each reply once, none other");
    assert!(staged_texts.contains(&"Hi Maria, I'm on it".to_owned()));

    // WAHA reports each one READ (ack 3): signed webhooks through ingress.
    let provider_ids: Vec<(String, String)> = {
        use diesel::prelude::*;
        use shared::db::schema::messages as m;
        let mut conn = w.db.pool.get().await.unwrap();
        diesel_async::RunQueryDsl::load(
            m::table
                .filter(m::direction.eq("outbound"))
                .select((m::id, m::provider_message_id.assume_not_null())),
            &mut conn,
        )
        .await
        .unwrap()
    };
    assert_eq!(provider_ids.len(), 4);
    let before = subscriber.seen().len();
    for (_, provider_id) in &provider_ids {
        let body = waha_ack_body(provider_id, 3);
        let signature = waha_signature(&body);
        let headers = [
            ("content-type", "application/json"),
            ("x-webhook-hmac", signature.as_str()),
            ("x-webhook-hmac-algorithm", "sha512"),
        ];
        let answer = send(front.webhooks, "POST", &hook, &headers, body).await;
        assert_eq!(
            (answer.status, answer.body["accepted"].clone()),
            (200, json!(1))
        );
    }
    // An unsigned ack is refused: the inbox requires the signature.
    let unsigned = send(
        front.webhooks,
        "POST",
        &hook,
        &[("content-type", "application/json")],
        waha_ack_body(&provider_ids[0].1, 3),
    )
    .await;
    assert_eq!(unsigned.status, 401, "{:?}", unsigned.body);
    eventually("every reply is read", || async {
        w.count(&format!("{outbound} AND status = 'read'")).await == 4
    })
    .await;
    for (message_id, _) in &provider_ids {
        let read = format!(
            "SELECT 1 FROM event_logs WHERE type = 'message.read' AND aggregate_id = '{message_id}'"
        );
        assert_eq!(w.count(&read).await, 1, "one message.read for {message_id}");
        let stamped = format!(
            "SELECT 1 FROM message_deliveries WHERE message_id = '{message_id}' AND attempts = 1 AND sent_at IS NOT NULL AND read_at IS NOT NULL"
        );
        assert_eq!(w.count(&stamped).await, 1);
    }
    // message.read on exactly the matrix's channels (our row beside DESIGN.md §5's).
    let events = w.events().await;
    let read_events: Vec<_> = events
        .iter()
        .filter(|e| e.envelope.event_type == "message.read")
        .collect();
    assert_eq!(read_events.len(), 4);
    let mut expected_reads: Vec<(String, String)> = Vec::new();
    for event in &read_events {
        let case_id = case_id.as_str();
        // The agents' channel of the session's path when the ack came (bot again after the
        // case closed), as the event carries it.
        let agent_type = event.envelope.data["session"]["agent_type"]
            .as_str()
            .unwrap_or("missing");
        let channels = crate::matrix(
            "message.read",
            &session_id,
            &w.inbox_id,
            case_id,
            agent_type,
        )
        .unwrap_or_default();
        for channel in channels {
            expected_reads.push((
                format!(
                    "{}private-tenant.{}.{channel}",
                    w.broadcast_prefix, w.tenant_id
                ),
                event.envelope.id.clone(),
            ));
        }
    }
    let mut seen_reads: Vec<(String, String)> = subscriber.settle().await[before..]
        .iter()
        .filter(|(_, p)| p["event"] == "message.read")
        .map(|(c, p)| (c.clone(), p["data"]["id"].as_str().unwrap_or("").to_owned()))
        .collect();
    // The four acks are separate jobs run concurrently: their events' log order and publish
    // order may differ, so compare what went where, not the interleaving.
    seen_reads.sort();
    expected_reads.sort();
    assert_eq!(seen_reads, expected_reads);
    assert_eq!(
        shared::events::channels::audiences(shared::events::types::MESSAGE_READ).len(),
        expected_reads.len() / read_events.len(),
        "the test's matrix agrees with the pipeline's"
    );
    assert_eq!(waha.requests().len(), 4, "no reply was sent twice");
}

/// A deploy's SIGTERM: the worker binary's last jobs' outbox rows are cleaned up before it exits,
/// so that no relay sends those events again. The cleanup window is stretched (5 s) so the rows
/// are provably still there when the signal comes; without the shutdown flush they would stay.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_worker_cleans_up_what_its_last_jobs_sent() {
    let w = World::new().await;
    let subscriber = w.subscribe(&w.tenant_id).await;
    let mut vars = env(&w);
    vars.push(("WORKER_OUTBOX_CLEANUP_MS", "5000".into()));
    let mut worker = spawn(
        &PathBuf::from(env!("CARGO_BIN_EXE_worker")),
        &["--queue=whatsapp-messages"],
        &vars,
    );
    w.redis
        .queues
        .enqueue(&w.waha("1@c.us", "wamid-stop", "hello"))
        .await
        .unwrap();
    // A new conversation: three events, seven broadcasts.
    subscriber.wait_for(7).await;
    let left = w.count("SELECT 1 FROM event_outbox").await;
    assert!(left > 0, "the rows of what went out wait for their cleanup");

    let pid = nix::unistd::Pid::from_raw(worker.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut status = None;
    for _ in 0..600 {
        status = worker.0.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(status.expect("the worker exits").success());
    assert_eq!(w.count("SELECT 1 FROM event_outbox").await, 0);
    assert_eq!(w.count("SELECT 1 FROM job_outbox").await, 0);
}

/// A fleet on the same host as its stores may reach them over Unix sockets (less kernel work
/// per round trip than loopback TCP; BENCHMARKS.md): the `ingress` and `worker` binaries are
/// given only a `unix://` Redis URL and a Postgres URL naming the server's socket directory,
/// and a webhook goes through to the bot's broadcast reply.
#[tokio::test(flavor = "multi_thread")]
async fn the_binaries_reach_redis_and_postgres_over_unix_sockets() {
    use shared::testkit::PrivateRedis;
    let w = World::new().await;
    let redis = PrivateRedis::start(PrivateRedis::free_port()).await;
    let database_url = over_unix_socket(&w).await;
    let mut vars: Vec<(&'static str, String)> = env(&w)
        .into_iter()
        .filter(|(name, _)| !matches!(*name, "REDIS_URL" | "DATABASE_URL"))
        .collect();
    vars.push(("REDIS_URL", redis.unix_url()));
    vars.push(("DATABASE_URL", database_url));
    let subscriber = Subscriber::start_on(
        &redis.unix_url(),
        &format!(
            "{}private-tenant.{}.messages",
            w.broadcast_prefix, w.tenant_id
        ),
    )
    .await;
    let worker_binary = PathBuf::from(env!("CARGO_BIN_EXE_worker"));
    let _worker = spawn(&worker_binary, &["--queue=whatsapp-messages"], &vars);
    let ingress_binary = worker_binary.with_file_name("ingress");
    let _ingress = if ingress_binary.exists() {
        let (ingress, addr) = start_ingress(&ingress_binary, vars).await;
        let hook = format!("/webhooks/waha/{}", w.inbox_id);
        let headers = [("content-type", "application/json")];
        let response = send(addr, "POST", &hook, &headers, waha_body("wamid-unix", "hi")).await;
        assert_eq!(response.status, 200, "{:?}", response.body);
        Some(ingress)
    } else {
        eprintln!("e2e: no ingress binary beside the worker; the job is enqueued directly");
        let queues = shared::queue::Queues::new(&redis.unix_url(), &w.redis.prefix).unwrap();
        let job = w.waha("4915212345678@c.us", "wamid-unix", "hi");
        queues.enqueue(&job).await.unwrap();
        None
    };
    // The customer's message and the bot's reply, each `message.ready` on `messages`.
    let seen = subscriber.wait_for(2).await;
    let senders: Vec<&str> = seen
        .iter()
        .map(|(_, event)| {
            event["data"]["data"]["message"]["sender_type"]
                .as_str()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(senders, ["customer", "bot"], "{seen:?}");
    assert_eq!(w.count("SELECT 1 FROM messages").await, 2);
}

/// The test database's URL through the server's first Unix socket directory.
async fn over_unix_socket(w: &World) -> String {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let mut conn = w.db.pool.get().await.unwrap();
    let mut setting = async |name: &str| {
        let query = diesel::sql_query(format!("SELECT current_setting('{name}') AS value"));
        diesel_async::RunQueryDsl::get_result::<Setting>(query, &mut conn)
            .await
            .unwrap()
            .value
    };
    let dirs = setting("unix_socket_directories").await;
    let port = setting("port").await;
    let dir = dirs.split(',').next().unwrap_or("").trim();
    assert!(
        dir.starts_with('/'),
        "Postgres listens on no Unix socket ({dirs:?})"
    );
    let host = dir.replace('/', "%2F");
    format!("postgres://postgres@{host}:{port}/{}", w.db.name)
}
