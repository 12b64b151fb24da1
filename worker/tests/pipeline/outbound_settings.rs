//! Outbound credentials per inbox and pause / resume, end to end: inboxes provisioned through
//! the `/api` endpoints, customer messages through the worker's real handlers, the bot's replies
//! through the production `delivery.send` handler (settings from Postgres) to loopback
//! stand-ins for WAHA, the Graph API and an SMTP server with AUTH. Resume runs through the API
//! and through the real `worker` binary.

// The WAHA / Graph API stand-in of shared's channel tests; not every part is used here.
#[allow(dead_code)]
#[path = "../../../shared/tests/channels/standin.rs"]
mod standin;

use std::{
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};
use shared::{
    channels::{DbSettings, DeliveryHandler, WahaDefaults},
    config::Secret,
    conversation::api_keys::{self, Scope},
    events::Broadcaster,
    queue::{Job, QueueName},
    testkit::unique,
};
use standin::{Reply, StandIn};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

use crate::{
    World,
    http::{ApiServer, CREATED, Client, send},
    stream_jobs, waha_job,
};

const EXPIRED: &str = "Error validating access token: Session has expired";

/// A world with the API served, an operator key and a tenant key, and the production
/// `delivery.send` handler reading settings from the test database.
struct Desk {
    w: World,
    server: ApiServer,
    operator: Client,
    tenant: Client,
    handler: Arc<DeliveryHandler>,
}

async fn desk() -> Desk {
    desk_with(None).await
}

async fn desk_with(waha: Option<WahaDefaults>) -> Desk {
    let w = World::new().await;
    let broadcaster = Broadcaster::new(w.redis.queues.clone(), w.broadcast_prefix.clone());
    let api =
        ingress::api::Api::with_broadcaster(w.db.pool.clone(), w.redis.queues.clone(), broadcaster);
    let server = ApiServer::start(api).await;
    let operator = Client::new(server.addr, &key(&w, Scope::Operator).await);
    let tenant_scope = Scope::Tenant {
        tenant_id: w.tenant_id.clone(),
    };
    let tenant = Client::new(server.addr, &key(&w, tenant_scope).await);
    let settings = Arc::new(DbSettings::new(w.db.pool.clone(), waha));
    let handler = worker::handlers::outbound::handler(w.conversations(), settings);
    Desk {
        w,
        server,
        operator,
        tenant,
        handler,
    }
}

async fn key(w: &World, scope: Scope) -> String {
    let mut conn = w.db.pool.get().await.unwrap();
    api_keys::create(&mut conn, &scope, "test")
        .await
        .unwrap()
        .token
}

impl Desk {
    /// Creates an inbox through the API; returns its id.
    async fn inbox(&self, body: Value) -> String {
        let path = format!("/api/tenants/{}/inboxes", self.w.tenant_id);
        let reply = self.operator.post(&path, body).await;
        assert_eq!(reply.status, CREATED, "{:?}", reply.body);
        reply.body["inbox"]["id"].as_str().unwrap().to_owned()
    }

    async fn put(&self, client: &Client, inbox: &str, body: Value) -> crate::http::Reply {
        let auth = format!("Bearer {}", client.key);
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        let path = format!("/api/inboxes/{inbox}/outbound");
        send(self.server.addr, "PUT", &path, &headers, body.to_string()).await
    }

    async fn resume(&self, client: &Client, inbox: &str) -> crate::http::Reply {
        let path = format!("/api/inboxes/{inbox}/deliveries/resume");
        client.post(&path, json!({})).await
    }

    /// A customer message to `inbox` through the worker's inbound handler; returns the
    /// delivery job of the bot's reply.
    async fn customer_writes(&self, kind: &str, inbox: &str, n: u32) -> Job {
        let before = self.deliveries_of(inbox).await.len();
        let job = inbound(kind, &self.w.tenant_id, inbox, n);
        self.w.run(&job).await.unwrap();
        let mut staged = self.deliveries_of(inbox).await;
        assert_eq!(staged.len(), before + 1, "the bot answered {kind} #{n}");
        staged.pop().unwrap()
    }

    async fn deliveries_of(&self, inbox: &str) -> Vec<Job> {
        self.w
            .deliveries()
            .await
            .into_iter()
            .filter(|j| j.payload["inbox_id"] == inbox)
            .collect()
    }

    async fn delivered(&self, job: &Job) -> i64 {
        let id = job.payload["message_id"].as_str().unwrap();
        self.w
            .count(&format!(
                "SELECT 1 FROM messages WHERE id = '{id}' AND status IN ('sent', 'delivered')"
            ))
            .await
    }

    /// The jobs in the deliveries delayed set.
    async fn held(&self) -> Vec<Job> {
        let key = self.w.redis.queues.keys(&q("deliveries")).delayed;
        let mut conn = redis_conn().await;
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        members
            .iter()
            .map(|m| serde_json::from_str(m).unwrap())
            .collect()
    }
}

fn q(name: &str) -> QueueName {
    QueueName::new(name).unwrap()
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(shared::testkit::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// An inbound message job of `kind` as ingress enqueues it, from customer number `n`.
fn inbound(kind: &str, tenant: &str, inbox: &str, n: u32) -> Job {
    let id = unique("pm");
    let (job_kind, raw, context) = match kind {
        "waha" => return waha_job(tenant, inbox, &format!("4915{n}@c.us"), &id, "hello"),
        "whatsapp_cloud" => (
            "whatsapp.message",
            json!({"from": format!("4915{n}"), "id": format!("wamid.{id}"), "type": "text",
                   "timestamp": "1763801000", "text": {"body": "hello"}}),
            json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": format!("4915{n}")}]}),
        ),
        "messenger" => (
            "messenger.message",
            json!({"sender": {"id": format!("70{n}")}, "recipient": {"id": "page-1"},
                   "timestamp": 1763801000123u64, "message": {"mid": format!("m_{id}"), "text": "hello"}}),
            json!({}),
        ),
        "email" => (
            "email.message",
            json!({"sender": format!("sam{n}@example.net"), "from": format!("Sam <sam{n}@example.net>"),
                   "subject": "Where is my order?", "body-plain": format!("hello {id}")}),
            json!({"provider": "mailgun"}),
        ),
        other => panic!("no inbound job for {other}"),
    };
    let payload = json!({
        "v": 1, "channel": kind, "inbox_id": inbox, "tenant_id": tenant,
        "provider_message_id": if kind == "email" { Value::Null } else { json!(id) },
        "received_at": "2026-11-23T10:00:00.000Z", "context": context, "raw": raw,
    });
    Job::new(q("facebook"), job_kind, payload)
        .with_tenant(tenant)
        .with_correlation_id(unique("corr"))
}

fn waha_ok() -> Reply {
    Reply::json(
        201,
        json!({"id": format!("true_4915@c.us_{}", unique("w"))}),
    )
}

fn messenger_ok() -> Reply {
    Reply::json(
        200,
        json!({"recipient_id": "70", "message_id": format!("m_{}", unique("s"))}),
    )
}

fn whatsapp_ok() -> Reply {
    Reply::json(
        200,
        json!({"messaging_product": "whatsapp", "contacts": [{"input": "4915", "wa_id": "4915"}],
               "messages": [{"id": format!("wamid.{}", unique("s"))}]}),
    )
}

fn token_expired() -> Reply {
    Reply::json(
        401,
        json!({"error": {"message": EXPIRED, "type": "OAuthException", "code": 190,
                         "error_subcode": 463, "fbtrace_id": "AbC123"}}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_settings_reach_each_provider_and_a_new_token_is_used_without_restart() {
    let d = desk().await;
    let (waha, graph, smtp) = (
        StandIn::start().await,
        StandIn::start().await,
        SmtpAuth::start().await,
    );

    let waha_inbox = d
        .inbox(
            json!({"kind": "waha", "name": "WA", "waha_session": "sales",
            "outbound": {"api_base_url": waha.base.as_str(), "access_token": "waha-key-1"}}),
        )
        .await;
    let messenger_inbox = d
        .inbox(
            json!({"kind": "messenger", "name": "FB", "page_id": unique("page"),
            "outbound": {"api_base_url": graph.base.as_str(), "api_version": "v19.0",
                         "access_token": "page-token-1"}}),
        )
        .await;
    let cloud_inbox = d
        .inbox(
            json!({"kind": "whatsapp_cloud", "name": "Cloud", "phone_number_id": "106540352242922",
            "outbound": {"api_base_url": graph.base.as_str(), "api_version": "v20.0",
                         "access_token": "cloud-token-1"}}),
        )
        .await;
    let email_inbox = d
        .inbox(
            json!({"kind": "email", "name": "Mail", "email_provider": "mailgun",
            "mailgun_signing_key": "mg-key",
            "outbound": {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_security": "plain",
                         "smtp_username": "support", "smtp_password": "smtp-pass-1",
                         "smtp_from": "Acme Support <support@acme.example>"}}),
        )
        .await;

    // WAHA: the stored server, the inbox's session, the stored key.
    waha.reply(waha_ok());
    let job = d.customer_writes("waha", &waha_inbox, 1).await;
    d.handler.run(&job).await.unwrap();
    let seen = waha.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/api/sendText");
    assert_eq!(seen[0].header("x-api-key"), Some("waha-key-1"));
    assert_eq!(seen[0].body["session"], "sales");
    assert_eq!(d.delivered(&job).await, 1);

    // Messenger: the stored base and version, the page token as the query's access_token.
    graph.reply(messenger_ok());
    let job = d.customer_writes("messenger", &messenger_inbox, 2).await;
    d.handler.run(&job).await.unwrap();
    let seen = graph.requests();
    assert_eq!(seen[0].path, "/v19.0/me/messages");
    assert_eq!(seen[0].query.as_deref(), Some("access_token=page-token-1"));
    assert_eq!(seen[0].body["recipient"]["id"], "702");
    assert_eq!(d.delivered(&job).await, 1);

    // WhatsApp Cloud: the stored version, the inbox's phone number, the token as Bearer.
    graph.reply(whatsapp_ok());
    let job = d.customer_writes("whatsapp_cloud", &cloud_inbox, 3).await;
    d.handler.run(&job).await.unwrap();
    let seen = graph.requests();
    assert_eq!(seen[1].path, "/v20.0/106540352242922/messages");
    assert_eq!(
        seen[1].header("authorization"),
        Some("Bearer cloud-token-1")
    );
    assert_eq!(d.delivered(&job).await, 1);

    // Email: the stored SMTP server, account and From.
    let job = d.customer_writes("email", &email_inbox, 4).await;
    d.handler.run(&job).await.unwrap();
    assert_eq!(smtp.logins(), vec!["support:smtp-pass-1".to_owned()]);
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("From: \"Acme Support\" <support@acme.example>"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("To: sam4@example.net"), "{}", mails[0]);
    assert_eq!(d.delivered(&job).await, 1);

    // New credentials reach the next send of the same handler (no restart).
    let reply = d
        .put(
            &d.operator,
            &cloud_inbox,
            json!({"api_base_url": graph.base.as_str(),
            "api_version": "v21.0", "access_token": "cloud-token-2"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    graph.reply(whatsapp_ok());
    let job = d.customer_writes("whatsapp_cloud", &cloud_inbox, 5).await;
    d.handler.run(&job).await.unwrap();
    let seen = graph.requests();
    assert_eq!(seen[2].path, "/v21.0/106540352242922/messages");
    assert_eq!(
        seen[2].header("authorization"),
        Some("Bearer cloud-token-2")
    );

    let reply = d
        .put(
            &d.operator,
            &email_inbox,
            json!({"smtp_host": "127.0.0.1", "smtp_port": smtp.port,
            "smtp_security": "plain", "smtp_username": "support", "smtp_password": "smtp-pass-2",
            "smtp_from": "support@acme.example"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let job = d.customer_writes("email", &email_inbox, 6).await;
    d.handler.run(&job).await.unwrap();
    assert_eq!(
        smtp.logins().last().map(String::as_str),
        Some("support:smtp-pass-2")
    );
    assert_eq!(graph.requests().len(), 3, "nothing else was sent");
    assert_eq!(waha.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waha_inbox_without_stored_settings_uses_the_deployments_waha_server() {
    let waha = StandIn::start().await;
    let defaults = WahaDefaults {
        base_url: waha.base.clone(),
        api_key: Some(Secret::new("env-key")),
    };
    let d = desk_with(Some(defaults)).await;
    // World's own WAHA inbox has no outbound row: WAHA_BASE_URL / WAHA_API_KEY apply.
    waha.reply(waha_ok());
    let job = d.customer_writes("waha", &d.w.inbox_id.clone(), 1).await;
    d.handler.run(&job).await.unwrap();
    let seen = waha.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/api/sendText");
    assert_eq!(seen[0].header("x-api-key"), Some("env-key"));
    assert_eq!(seen[0].body["session"], "default");

    // A Messenger inbox with no token has no settings: held for later, not sent, not failed.
    let inbox = d
        .inbox(json!({"kind": "messenger", "name": "FB", "page_id": unique("page")}))
        .await;
    let job = d.customer_writes("messenger", &inbox, 2).await;
    d.handler.run(&job).await.expect("held, not failed");
    assert_eq!(d.delivered(&job).await, 0);
    let held: Vec<Job> = d
        .held()
        .await
        .into_iter()
        .filter(|j| j.id == job.id)
        .collect();
    assert_eq!(held.len(), 1, "held in the delayed set");
    assert_eq!(held[0].attempt, job.attempt, "no attempt burnt");
    assert!(
        held[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("no outbound settings"),
        "{:?}",
        held[0].last_error
    );

    // Saving the settings releases it at once, and it goes out with them.
    let graph = StandIn::start().await;
    graph.reply(messenger_ok());
    let reply = d
        .put(
            &d.operator,
            &inbox,
            json!({"api_base_url": graph.base.as_str(), "api_version": "v21.0", "access_token": "page-token"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["released"], 1);
    assert!(
        d.held().await.iter().all(|j| j.id != job.id),
        "no longer held"
    );
    let due: Vec<Job> = d
        .deliveries_of(&inbox)
        .await
        .into_iter()
        .filter(|j| j.id == job.id)
        .collect();
    assert!(!due.is_empty(), "back on the stream");
    d.handler.run(due.last().unwrap()).await.unwrap();
    assert_eq!(graph.requests().len(), 1);
    assert_eq!(d.delivered(&job).await, 1);
}

/// An inbox whose WhatsApp Cloud token expired: three replies staged, the first send refused
/// with 190. Returns the inbox, its stand-in and the three delivery jobs.
async fn broken_inbox(d: &Desk) -> (String, StandIn, Vec<Job>) {
    let graph = StandIn::start().await;
    let inbox = d
        .inbox(
            json!({"kind": "whatsapp_cloud", "name": "Cloud", "phone_number_id": unique("pn"),
            "outbound": {"api_base_url": graph.base.as_str(), "access_token": "expired-token"}}),
        )
        .await;
    let mut jobs = Vec::new();
    for n in 1..=3 {
        jobs.push(d.customer_writes("whatsapp_cloud", &inbox, n).await);
    }
    graph.reply(token_expired());
    for job in &jobs {
        d.handler.run(job).await.expect("held, not failed");
    }
    assert_eq!(
        graph.requests().len(),
        1,
        "the later jobs were held, not sent"
    );
    let paused_events =
        d.w.events()
            .await
            .into_iter()
            .filter(|e| e.envelope.event_type == "inbox.delivery_paused")
            .collect::<Vec<_>>();
    assert_eq!(paused_events.len(), 1, "emitted once");
    assert!(
        paused_events[0].envelope.data["reason"]
            .as_str()
            .unwrap()
            .contains(EXPIRED)
    );
    let sql = format!(
        "SELECT 1 FROM inbox_outbound WHERE inbox_id = '{inbox}' AND paused_at IS NOT NULL \
         AND paused_reason LIKE '%Session has expired%'"
    );
    assert_eq!(d.w.count(&sql).await, 1, "the pause is recorded");
    let held = d.held().await;
    assert_eq!(held.len(), 3);
    for (job, original) in held.iter().zip(&jobs) {
        assert_eq!(job.attempt, original.attempt, "no attempt burnt");
    }
    assert_eq!(
        d.w.count("SELECT 1 FROM messages WHERE status = 'failed'")
            .await,
        0
    );
    (inbox, graph, jobs)
}

/// After a resume: the three held jobs are on the stream; each is sent once with the new token.
async fn sends_each_once_after_resume(d: &Desk, graph: &StandIn, jobs: &[Job]) {
    assert!(d.held().await.is_empty(), "released from the delayed set");
    let on_stream = stream_jobs(&d.w.redis, "deliveries").await;
    let released: Vec<&Job> = on_stream
        .iter()
        .filter(|j| {
            j.last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("held"))
        })
        .collect();
    assert_eq!(released.len(), 3, "{on_stream:?}");
    for _ in 0..3 {
        graph.reply(whatsapp_ok());
    }
    for job in &released {
        d.handler.run(job).await.unwrap();
        d.handler.run(job).await.unwrap();
    }
    for job in jobs {
        d.handler.run(job).await.unwrap();
        assert_eq!(d.delivered(job).await, 1);
    }
    let seen = graph.requests();
    assert_eq!(seen.len(), 4, "one refused, then each message exactly once");
    for request in &seen[1..] {
        assert_eq!(request.header("authorization"), Some("Bearer fresh-token"));
    }
    assert_eq!(
        d.w.count("SELECT 1 FROM message_deliveries WHERE sent_at IS NOT NULL")
            .await,
        3
    );
}

async fn fix_token(d: &Desk, inbox: &str, graph: &StandIn) {
    let reply = d
        .put(
            &d.operator,
            inbox,
            json!({"api_base_url": graph.base.as_str(),
            "access_token": "fresh-token"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["outbound"]["access_token"], "set");
    assert!(
        reply.body["outbound"]["paused"]["reason"]
            .as_str()
            .unwrap()
            .contains(EXPIRED),
        "new credentials do not resume by themselves: {:?}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_inbox_holds_its_deliveries_and_sends_them_after_resume_through_the_api() {
    let d = desk().await;
    let (inbox, graph, jobs) = broken_inbox(&d).await;
    let listing = d
        .operator
        .get(&format!("/api/tenants/{}/inboxes", d.w.tenant_id))
        .await;
    let shown = listing.body["inboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == inbox.as_str())
        .unwrap()
        .clone();
    assert!(shown["outbound"]["paused"]["since"].is_string(), "{shown}");
    assert_eq!(shown["outbound"]["access_token"], "set");

    // The pause is durable: with the Redis flag lost (a Redis restart), the record holds.
    let flag = format!("{}:channels:{inbox}:paused", d.w.redis.prefix);
    let mut conn = redis_conn().await;
    redis::cmd("DEL")
        .arg(&flag)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    d.handler.run(&jobs[1]).await.unwrap();
    assert_eq!(graph.requests().len(), 1, "held by the durable record");
    let restored: Option<String> = redis::cmd("GET")
        .arg(&flag)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        restored.unwrap().contains(EXPIRED),
        "the fast path is restored"
    );

    fix_token(&d, &inbox, &graph).await;
    // Still paused: another run holds the job again (the same delayed entry) without sending.
    d.handler.run(&jobs[0]).await.unwrap();
    assert_eq!(graph.requests().len(), 1);
    assert_eq!(d.held().await.len(), 3);

    let reply = d.resume(&d.operator, &inbox).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["resumed"]["released"], 3);
    assert!(
        reply.body["resumed"]["reason"]
            .as_str()
            .unwrap()
            .contains(EXPIRED)
    );
    let sql =
        format!("SELECT 1 FROM inbox_outbound WHERE inbox_id = '{inbox}' AND paused_at IS NULL");
    assert_eq!(d.w.count(&sql).await, 1, "the durable record is cleared");

    sends_each_once_after_resume(&d, &graph, &jobs).await;
    let again = d.resume(&d.operator, &inbox).await;
    assert_eq!(again.status, 409, "{:?}", again.body);
    assert_eq!(again.body["code"], "conflict");
}

fn cli(d: &Desk, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(args)
        .env("REDIS_URL", shared::testkit::redis_url())
        .env("DATABASE_URL", &d.w.db.url)
        .env("SWITCHYARD_PREFIX", &d.w.redis.prefix)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("worker binary runs")
}

fn expect_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_lists_paused_inboxes_and_resumes_one() {
    let d = desk().await;
    let out = cli(&d, &["inboxes", "paused", "--json"]);
    expect_code(&out, 0);
    let none: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(none, json!([]));

    let (inbox, graph, jobs) = broken_inbox(&d).await;
    let out = cli(&d, &["inboxes", "paused", "--json"]);
    expect_code(&out, 0);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["inbox_id"], inbox.as_str());
    assert_eq!(listed[0]["kind"], "whatsapp_cloud");
    assert_eq!(listed[0]["held"], 3);
    assert!(listed[0]["reason"].as_str().unwrap().contains(EXPIRED));
    assert!(listed[0]["since"].is_string());
    let out = cli(&d, &["inboxes", "paused"]);
    expect_code(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&inbox) && text.contains("HELD"), "{text}");

    fix_token(&d, &inbox, &graph).await;
    let out = cli(&d, &["inboxes", "resume", &inbox]);
    expect_code(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 held deliveries released"));
    sends_each_once_after_resume(&d, &graph, &jobs).await;

    let out = cli(&d, &["inboxes", "resume", &inbox]);
    expect_code(&out, 8);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not paused"));
    let out = cli(&d, &["inboxes", "resume", "inb_nope"]);
    expect_code(&out, 3);
    let out = cli(&d, &["inboxes", "paused", "--json"]);
    expect_code(&out, 0);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_outbound_api_refuses_what_it_should_and_never_shows_a_secret() {
    let d = desk().await;
    let path = format!("/api/tenants/{}/inboxes", d.w.tenant_id);
    let base = "http://127.0.0.1:9";

    // Unknown inbox: 404 on every route.
    for reply in [
        d.put(&d.operator, "inb_nope", json!({})).await,
        d.operator.get("/api/inboxes/inb_nope/outbound").await,
        d.resume(&d.operator, "inb_nope").await,
    ] {
        assert_eq!(reply.status, 404, "{:?}", reply.body);
        assert_eq!(reply.body["code"], "not_found");
    }
    // Tenant keys do not provision or resume.
    let inbox = d
        .inbox(
            json!({"kind": "messenger", "name": "FB", "page_id": unique("page"),
            "outbound": {"access_token": "page-secret-1", "api_base_url": base}}),
        )
        .await;
    for reply in [
        d.put(&d.tenant, &inbox, json!({"access_token": "x"})).await,
        d.tenant
            .get(&format!("/api/inboxes/{inbox}/outbound"))
            .await,
        d.resume(&d.tenant, &inbox).await,
    ] {
        assert_eq!(reply.status, 403, "{:?}", reply.body);
    }
    // Bad bodies: 400 naming the field.
    let cases = [
        (
            json!({"access_token": "t", "api_version": "21.0"}),
            "api_version",
        ),
        (
            json!({"access_token": "t", "api_base_url": "graph.facebook.com"}),
            "api_base_url",
        ),
        (
            json!({"access_token": "t", "page_token": "x"}),
            "page_token",
        ),
        (json!({"api_version": "v21.0"}), "access_token"),
        (
            json!({"access_token": "t", "smtp_host": "smtp.example"}),
            "smtp_host",
        ),
    ];
    for (body, field) in cases {
        let reply = d.put(&d.operator, &inbox, body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {:?}", reply.body);
        assert_eq!(reply.body["field"], field, "{body}: {:?}", reply.body);
    }
    let email = d
        .inbox(
            json!({"kind": "email", "name": "Mail", "email_provider": "mailgun",
            "mailgun_signing_key": "mg"}),
        )
        .await;
    let incomplete =
        json!({"smtp_host": "smtp.example", "smtp_port": 587, "smtp_security": "starttls"});
    let reply = d.put(&d.operator, &email, incomplete).await;
    assert_eq!(
        (reply.status, reply.body["field"].clone()),
        (400, json!("smtp_from"))
    );
    // A bad outbound object refuses the whole inbox.
    let reply = d
        .operator
        .post(
            &path,
            json!({"kind": "whatsapp_cloud", "name": "Cloud", "phone_number_id": "pn-bad",
            "outbound": {"access_token": "t", "api_version": "latest"}}),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["field"], "outbound.api_version");
    assert_eq!(
        d.w.count("SELECT 1 FROM inboxes WHERE phone_number_id = 'pn-bad'")
            .await,
        0,
        "not created"
    );
    // Not paused: 409.
    let reply = d.resume(&d.operator, &inbox).await;
    assert_eq!(reply.status, 409, "{:?}", reply.body);

    // Secrets are shown as set, never as values, in every answer.
    let smtp = json!({"smtp_host": "smtp.example", "smtp_port": 587, "smtp_security": "starttls",
        "smtp_username": "support", "smtp_password": "smtp-secret-2", "smtp_from": "s@acme.example"});
    let answers = [
        d.put(
            &d.operator,
            &inbox,
            json!({"access_token": "page-secret-3"}),
        )
        .await,
        d.put(&d.operator, &email, smtp).await,
        d.operator
            .get(&format!("/api/inboxes/{inbox}/outbound"))
            .await,
        d.operator
            .get(&format!("/api/inboxes/{email}/outbound"))
            .await,
        d.operator.get(&path).await,
    ];
    for reply in &answers {
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let text = reply.body.to_string();
        assert!(!text.contains("secret"), "{text}");
    }
    assert_eq!(answers[2].body["outbound"]["access_token"], "set");
    assert_eq!(
        answers[2].body["outbound"]["api_base_url"],
        Value::Null,
        "replaced, not merged"
    );
    assert_eq!(answers[3].body["outbound"]["smtp_password"], "set");
    assert_eq!(answers[3].body["outbound"]["smtp_username"], "support");
}

/// A loopback SMTP server that requires AUTH PLAIN and records who logged in and every mail.
struct SmtpAuth {
    port: u16,
    logins: Arc<Mutex<Vec<String>>>,
    mails: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpAuth {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let logins: Arc<Mutex<Vec<String>>> = Arc::default();
        let mails: Arc<Mutex<Vec<String>>> = Arc::default();
        let (l, m) = (logins.clone(), mails.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(smtp_session(stream, l.clone(), m.clone()));
            }
        });
        Self {
            port,
            logins,
            mails,
            task,
        }
    }

    fn logins(&self) -> Vec<String> {
        self.logins.lock().unwrap().clone()
    }

    fn mails(&self) -> Vec<String> {
        self.mails.lock().unwrap().clone()
    }
}

impl Drop for SmtpAuth {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn smtp_session(
    stream: tokio::net::TcpStream,
    logins: Arc<Mutex<Vec<String>>>,
    mails: Arc<Mutex<Vec<String>>>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 standin ESMTP\r\n").await;
    let mut authed = false;
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            "250-standin\r\n250-AUTH PLAIN\r\n250 8BITMIME".to_owned()
        } else if upper.starts_with("AUTH PLAIN") {
            let encoded = line[10..].trim();
            let decoded = String::from_utf8(base64_decode(encoded)).unwrap_or_default();
            // authzid \0 authcid \0 password
            let parts: Vec<&str> = decoded.split('\0').collect();
            logins.lock().unwrap().push(format!(
                "{}:{}",
                parts.get(1).unwrap_or(&""),
                parts.get(2).unwrap_or(&"")
            ));
            authed = true;
            "235 2.7.0 authenticated".to_owned()
        } else if upper.starts_with("MAIL") && !authed {
            "530 5.7.0 authentication required".to_owned()
        } else if upper.starts_with("DATA") {
            let _ = write.write_all(b"354 go ahead\r\n").await;
            let mut mail = String::new();
            while let Ok(Some(data)) = lines.next_line().await {
                if data == "." {
                    break;
                }
                mail.push_str(&data);
                mail.push_str("\r\n");
            }
            mails.lock().unwrap().push(mail);
            "250 2.0.0 queued".to_owned()
        } else if upper.starts_with("QUIT") {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            "250 OK".to_owned()
        };
        if write
            .write_all(format!("{reply}\r\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Standard base64 (what AUTH PLAIN sends); invalid input decodes to what it can.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.bytes().take_while(|b| *b != b'=') {
        let Some(value) = ALPHABET.iter().position(|a| *a == byte) else {
            continue;
        };
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}
