//! The conversation pipeline against the real Redis and Postgres: inbound jobs through the
//! worker's real handlers (the registry the binary builds), agent actions through
//! shared::conversation (what the `/api` endpoints call), events watched on Redis pub/sub.
//! `e2e` runs the real binaries. Each test has its own database, key prefix and broadcast
//! prefix (shared::testkit).

mod api;
mod bots;
mod concurrency;
mod crash;
mod dedup;
mod deliveries;
mod e2e;
mod group_commit;
mod http;
mod isolation;
mod journey;
mod outbound_settings;
mod plans;
mod status_callbacks;
mod transitions;
mod webhooks;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use diesel_async::RunQueryDsl;
use futures::StreamExt;
use serde_json::{Value, json};
use shared::{
    bot::{Bots, RulesFile},
    conversation::{
        Agent, Case, ConversationError, Conversations, CsatSurvey, Message, Tx, agents,
        cases::{self, Closing},
        csat, replies,
    },
    events::{Broadcaster, RecordedEvent, log},
    inboxes::{self, InboxKind, NewInbox},
    jobs::{JobError, JobRegistry},
    queue::{Job, QueueName},
    testkit::{TestDb, TestRedis, unique},
};
use worker::handlers::Pipeline;

/// One test's world: stores, a tenant with a WAHA inbox, and the worker's registry.
pub struct World {
    pub db: TestDb,
    pub redis: TestRedis,
    pub broadcast_prefix: String,
    pub pipeline: Pipeline,
    pub registry: JobRegistry,
    pub tenant_id: String,
    pub inbox_id: String,
}

impl World {
    pub async fn new() -> Self {
        let db = TestDb::new().await;
        let redis = TestRedis::new();
        let broadcast_prefix = format!("{}:", unique("bcast"));
        let (tenant_id, inbox_id) = tenant(&db, "Acme").await;
        let pipeline = pipeline(&db, &redis, &broadcast_prefix);
        let registry = worker::registry::with_pipeline(db.pool.clone(), pipeline.clone());
        Self {
            db,
            redis,
            broadcast_prefix,
            pipeline,
            registry,
            tenant_id,
            inbox_id,
        }
    }

    pub fn conversations(&self) -> &Conversations {
        &self.pipeline.conversations
    }

    /// Runs a job through the worker's handler for its kind.
    pub async fn run(&self, job: &Job) -> Result<(), JobError> {
        self.registry.dispatch(job.clone()).await
    }

    /// A WAHA message job exactly as ingress enqueues it (ingress/src/routes/waha.rs).
    pub fn waha(&self, from: &str, id: &str, text: &str) -> Job {
        waha_job(&self.tenant_id, &self.inbox_id, from, id, text)
    }

    pub async fn agent(&self, name: &str, capacity: i32) -> Agent {
        self.agent_of(&self.tenant_id, name, capacity).await
    }

    pub async fn agent_of(&self, tenant_id: &str, name: &str, capacity: i32) -> Agent {
        let new = agents::NewAgent {
            name: name.into(),
            email: None,
            capacity,
        };
        let c = self.conversations();
        let mut tx = c.begin(tenant_id, "test").await.unwrap();
        let result = agents::create(&mut tx, &new).await;
        settle(c, tx, result).await.unwrap()
    }

    /// A transaction for `tenant_id`, as the API opens one.
    pub async fn tx(&self, tenant_id: &str) -> Tx {
        self.conversations()
            .begin(tenant_id, &unique("req"))
            .await
            .unwrap()
    }

    pub async fn reply(
        &self,
        tenant_id: &str,
        session_id: &str,
        agent_id: &str,
        text: &str,
    ) -> Result<Message, ConversationError> {
        let reply = replies::AgentReply {
            agent_id: agent_id.into(),
            text: text.into(),
            idempotency_key: None,
        };
        let mut tx = self.tx(tenant_id).await;
        let result = replies::reply(&mut tx, session_id, &reply)
            .await
            .map(|(m, _)| m);
        settle(self.conversations(), tx, result).await
    }

    pub async fn close(
        &self,
        tenant_id: &str,
        case_id: &str,
        disposition: &str,
        sentiment: &str,
    ) -> Result<cases::Closed, ConversationError> {
        let closing = Closing::new(disposition, sentiment)?;
        let mut tx = self.tx(tenant_id).await;
        let result = cases::close(&mut tx, case_id, &closing).await;
        settle(self.conversations(), tx, result).await
    }

    pub async fn answer_csat(
        &self,
        tenant_id: &str,
        survey_id: &str,
        score: i64,
    ) -> Result<CsatSurvey, ConversationError> {
        let mut tx = self.tx(tenant_id).await;
        let result = csat::respond(&mut tx, survey_id, score, Some("quick and kind")).await;
        settle(self.conversations(), tx, result).await
    }

    /// The tenant's events in log order.
    pub async fn events_of(&self, tenant_id: &str) -> Vec<RecordedEvent> {
        let mut conn = self.db.pool.get().await.unwrap();
        log::list(&mut conn, tenant_id, 0, 10_000).await.unwrap()
    }

    pub async fn events(&self) -> Vec<RecordedEvent> {
        self.events_of(&self.tenant_id).await
    }

    pub async fn event_types(&self) -> Vec<String> {
        self.events()
            .await
            .into_iter()
            .map(|e| e.envelope.event_type)
            .collect()
    }

    /// `SELECT count(*)` of a query.
    pub async fn count(&self, sql: &str) -> i64 {
        count(&self.db, sql).await
    }

    /// The open case of the tenant's only live session.
    pub async fn open_case(&self, session_id: &str) -> Case {
        let mut tx = self.tx(&self.tenant_id).await;
        let case = cases::open_for_session(&mut tx, session_id)
            .await
            .unwrap()
            .expect("an open case");
        tx.rollback().await.unwrap();
        case
    }

    /// The jobs waiting on the `deliveries` queue, oldest first.
    pub async fn deliveries(&self) -> Vec<Job> {
        stream_jobs(&self.redis, "deliveries").await
    }

    /// Subscribes to every channel of `tenant_id` (with this world's broadcast prefix).
    pub async fn subscribe(&self, tenant_id: &str) -> Subscriber {
        Subscriber::start(&format!(
            "{}private-tenant.{tenant_id}.*",
            self.broadcast_prefix
        ))
        .await
    }
}

pub async fn tenant(db: &TestDb, name: &str) -> (String, String) {
    let tenant_id = inboxes::create_tenant(&db.pool, name).await.unwrap();
    let mut inbox = NewInbox::new(&tenant_id, InboxKind::Waha, "WhatsApp");
    inbox.waha_session = Some("default".into());
    let inbox_id = inboxes::create_inbox(&db.pool, &inbox).await.unwrap();
    (tenant_id, inbox_id)
}

pub fn pipeline(db: &TestDb, redis: &TestRedis, broadcast_prefix: &str) -> Pipeline {
    let bots = Bots::new(db.pool.clone(), RulesFile::default(), Duration::ZERO);
    let broadcaster = Broadcaster::new(redis.queues.clone(), broadcast_prefix);
    Pipeline::new(db.pool.clone(), redis.queues.clone(), broadcaster, bots)
}

pub fn waha_job(tenant_id: &str, inbox_id: &str, from: &str, id: &str, text: &str) -> Job {
    let raw = json!({
        "id": unique("evt"),
        "timestamp": 1763801000123u64,
        "event": "message",
        "session": "default",
        "payload": { "id": id, "from": from, "fromMe": false, "body": text, "hasMedia": false,
                     "_data": { "notifyName": "Maria" } },
    });
    let payload = json!({
        "v": 1, "channel": "waha", "inbox_id": inbox_id, "tenant_id": tenant_id,
        "provider_message_id": id, "received_at": "2026-11-23T10:00:00.000Z",
        "context": { "session": "default", "event": "message" }, "raw": raw,
    });
    Job::new(
        QueueName::new("whatsapp-messages").unwrap(),
        "waha.message",
        payload,
    )
    .with_tenant(tenant_id)
    .with_correlation_id(unique("corr"))
}

/// Commits (or rolls back) like the API does, and publishes what was committed.
pub async fn settle<T>(
    c: &Conversations,
    tx: Tx,
    result: Result<T, ConversationError>,
) -> Result<T, ConversationError> {
    let (value, effects) = tx.finish(result).await?;
    c.settle(effects).await;
    Ok(value)
}

pub async fn count(db: &TestDb, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = db.pool.get().await.unwrap();
    diesel::sql_query(format!("SELECT count(*) AS n FROM ({sql}) AS q"))
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n
}

pub async fn stream_jobs(redis: &TestRedis, queue: &str) -> Vec<Job> {
    let key = redis.queues.keys(&QueueName::new(queue).unwrap()).stream;
    let client = redis::Client::open(shared::testkit::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    entries
        .into_iter()
        .filter_map(|(_, fields)| {
            let json = fields.chunks(2).find(|kv| kv[0] == "job")?.get(1)?.clone();
            serde_json::from_str(&json).ok()
        })
        .collect()
}

/// A Redis pub/sub subscriber recording every (channel, payload) it sees.
pub struct Subscriber {
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub async fn start(pattern: &str) -> Self {
        Self::start_on(&shared::testkit::redis_url(), pattern).await
    }

    /// As `start`, on the Redis at `redis_url`.
    pub async fn start_on(redis_url: &str, pattern: &str) -> Self {
        let client = redis::Client::open(redis_url).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.psubscribe(pattern).await.unwrap();
        let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let payload: String = msg.get_payload().unwrap_or_default();
                let value = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
                sink.lock()
                    .unwrap()
                    .push((msg.get_channel_name().to_owned(), value));
            }
        });
        Self { seen, task }
    }

    pub fn seen(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages arrived (or panics after a minute).
    pub async fn wait_for(&self, n: usize) -> Vec<(String, Value)> {
        eventually(&format!("{n} broadcasts"), || async {
            self.seen().len() >= n
        })
        .await;
        self.seen()
    }

    /// Gives in-flight publishes a moment, then returns what arrived.
    pub async fn settle(&self) -> Vec<(String, Value)> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.seen()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `check` until it holds; the deadline only turns a hang into a failure.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The one session of the tenant (most tests have one customer).
pub async fn only_session(w: &World) -> String {
    let events = w.events().await;
    let created: Vec<&RecordedEvent> = events
        .iter()
        .filter(|e| e.envelope.event_type == "session.created")
        .collect();
    assert_eq!(created.len(), 1, "one session.created");
    created[0].aggregate_id.clone()
}

/// The matrix of DESIGN.md §5 for `event` (after `private-tenant.{t}.`); `None` for events that
/// are logged only. Written out here, apart from shared::events::channels, as the contract.
pub fn matrix(
    event: &str,
    session: &str,
    inbox: &str,
    case: &str,
    agent_type: &str,
) -> Option<Vec<String>> {
    let s = |x: &str| x.to_owned();
    Some(match event {
        "message.ready"
        | "message.reply_ready"
        | "message.delivered"
        | "message.read"
        | "message.delivery_failed" => {
            vec![
                s("messages"),
                format!("session.{session}"),
                format!("agent.{agent_type}"),
            ]
        }
        "queue_item.created" => vec![s("agent.live"), s("queues"), format!("queues-app.{inbox}")],
        "case.closed" | "csat.started" => vec![
            s("messages"),
            format!("session.{session}"),
            s("agent.live"),
            format!("case.{case}"),
        ],
        "session.created" => vec![format!("session.{session}")],
        "inbox.delivery_paused" | "subscription.disabled" => vec![s("messages")],
        _ => return None,
    })
}

/// (channel with prefixes, event id) of every broadcast the log's `events` should have caused,
/// in order, for a journey of one session and one case.
pub fn expected_broadcasts(
    w: &World,
    events: &[RecordedEvent],
    session: &str,
    case: &str,
) -> Vec<(String, String)> {
    let prefix = format!("{}private-tenant.{}.", w.broadcast_prefix, w.tenant_id);
    let mut expected = Vec::new();
    for e in events {
        let agent_type = e.envelope.data["session"]["agent_type"]
            .as_str()
            .unwrap_or("live");
        if let Some(channels) = matrix(
            &e.envelope.event_type,
            session,
            &w.inbox_id,
            case,
            agent_type,
        ) {
            for channel in channels {
                expected.push((format!("{prefix}{channel}"), e.envelope.id.clone()));
            }
        }
    }
    expected
}
