//! The `delivery.send` handler against a loopback WAHA and an in-memory store standing in for
//! the pipeline's tables: success, rerun after a crash, 500 then success, permanent refusal,
//! exhausted retries, and a broken inbox paused and resumed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;
use serde_json::json;
use shared::{
    channels::{
        ChannelSettings, DeliveryHandler, DeliveryStore, DeliveryTask, SendError, WahaConfig,
        status::DeliveryStatus,
    },
    config::Secret,
    jobs::JobError,
    queue::{Job, QueueName},
};

use crate::{
    TestRedis,
    standin::{Reply, StandIn},
};

/// The pipeline's tables, reduced to what the handler calls, with a log of the calls.
#[derive(Default)]
struct MemoryStore {
    statuses: Mutex<HashMap<String, DeliveryStatus>>,
    calls: Mutex<Vec<String>>,
}

impl MemoryStore {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn set(&self, task: &DeliveryTask, status: DeliveryStatus, call: String) {
        self.statuses
            .lock()
            .unwrap()
            .insert(task.message_id.clone(), status);
        self.calls.lock().unwrap().push(call);
    }
}

impl DeliveryStore for MemoryStore {
    fn status<'a>(
        &'a self,
        task: &'a DeliveryTask,
    ) -> BoxFuture<'a, Result<Option<DeliveryStatus>, JobError>> {
        let status = self.statuses.lock().unwrap().get(&task.message_id).copied();
        Box::pin(async move { Ok(status) })
    }

    fn sent<'a>(
        &'a self,
        task: &'a DeliveryTask,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        self.set(task, DeliveryStatus::Sent, format!("sent {id}"));
        Box::pin(async { Ok(()) })
    }

    fn failed<'a>(
        &'a self,
        task: &'a DeliveryTask,
        error: &'a SendError,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        self.set(task, DeliveryStatus::Failed, format!("failed {error}"));
        Box::pin(async { Ok(()) })
    }

    fn inbox_broken<'a>(
        &'a self,
        task: &'a DeliveryTask,
        error: &'a SendError,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("paused {} {error}", task.inbox_id));
        Box::pin(async { Ok(()) })
    }
}

struct Fixture {
    redis: TestRedis,
    provider: StandIn,
    store: Arc<MemoryStore>,
    handler: Arc<DeliveryHandler>,
}

async fn fixture() -> Fixture {
    let redis = TestRedis::new();
    let provider = StandIn::start().await;
    let settings = HashMap::from([(
        "inb_w".to_owned(),
        ChannelSettings::Waha(WahaConfig {
            base_url: provider.base.clone(),
            session: "default".into(),
            api_key: Some(Secret::new("k")),
            http: crate::http(),
        }),
    )]);
    let store = Arc::new(MemoryStore::default());
    let handler = DeliveryHandler::new(redis.queues.clone(), store.clone(), Arc::new(settings));
    Fixture {
        redis,
        provider,
        store,
        handler,
    }
}

/// A `delivery.send` job as the pipeline stages it, its message stored.
fn job(fixture: &Fixture, message_id: &str) -> Job {
    let payload = json!({
        "v": 1, "message_id": message_id, "tenant_id": "ten_1", "inbox_id": "inb_w",
        "session_id": "ses_1", "channel": "waha", "recipient": "4915212345678@c.us",
        "text": "Your order shipped", "sender_type": "agent", "agent_id": "agt_1",
        "contact": {}, "email": null,
    });
    let job = Job::new(
        QueueName::new("deliveries").unwrap(),
        "delivery.send",
        payload,
    );
    let task = DeliveryTask::from_payload(&job.payload).unwrap();
    fixture
        .store
        .statuses
        .lock()
        .unwrap()
        .insert(task.message_id, DeliveryStatus::Stored);
    job
}

fn sent_reply(id: &str) -> Reply {
    Reply::json(201, json!({"id": id}))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_is_sent_and_its_provider_id_stored() {
    let f = fixture().await;
    f.provider.reply(sent_reply("W1"));
    f.handler.run(&job(&f, "msg_1")).await.unwrap();
    assert_eq!(f.store.calls(), ["sent W1"]);
    assert_eq!(f.provider.requests()[0].body["text"], "Your order shipped");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_after_a_crash_before_the_database_write_does_not_send_again() {
    let f = fixture().await;
    f.provider.reply(sent_reply("W1"));
    let job = job(&f, "msg_1");
    f.handler.run(&job).await.unwrap();
    // The worker died before the message row was updated: it still says stored.
    f.store
        .statuses
        .lock()
        .unwrap()
        .insert("msg_1".into(), DeliveryStatus::Stored);

    f.handler.run(&job).await.unwrap();

    assert_eq!(f.provider.requests().len(), 1);
    assert_eq!(f.store.calls(), ["sent W1", "sent W1"]);
    // Once stored, a rerun does nothing at all.
    f.handler.run(&job).await.unwrap();
    assert_eq!(f.store.calls().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_is_retried_and_the_retry_sends_one_message() {
    let f = fixture().await;
    f.provider
        .reply(Reply::json(500, json!({"message": "boom"})))
        .reply(sent_reply("W2"));
    let mut job = job(&f, "msg_1");

    let error = f.handler.run(&job).await.unwrap_err();
    assert!(matches!(error, JobError::Transient(_)), "{error:?}");
    job = job.next_attempt(&error.to_string());
    f.handler.run(&job).await.unwrap();

    assert_eq!(f.provider.requests().len(), 2);
    assert_eq!(f.store.calls(), ["sent W2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_refusal_fails_the_message_at_once() {
    let f = fixture().await;
    f.provider.reply(Reply::json(
        400,
        json!({"statusCode": 400, "message": "chatId is invalid"}),
    ));
    let error = f.handler.run(&job(&f, "msg_1")).await.unwrap_err();
    assert!(matches!(error, JobError::Permanent(_)), "{error:?}");
    let calls = f.store.calls();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].starts_with("failed permanent: chatId is invalid"),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_transient_failure_fails_the_message() {
    let f = fixture().await;
    f.provider
        .reply(Reply::json(503, json!({"message": "down"})));
    let mut job = job(&f, "msg_1");
    job.attempt = job.max_attempts;
    let error = f.handler.run(&job).await.unwrap_err();
    assert!(matches!(error, JobError::Transient(_)), "{error:?}");
    assert!(f.store.calls()[0].starts_with("failed transient: down"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_inbox_is_paused_holds_its_deliveries_and_sends_after_resume() {
    let f = fixture().await;
    f.provider
        .reply(Reply::json(
            401,
            json!({"statusCode": 401, "message": "Unauthorized"}),
        ))
        .reply(sent_reply("W3"))
        .reply(sent_reply("W4"));
    let (first, second) = (job(&f, "msg_1"), job(&f, "msg_2"));

    // The refusal pauses the inbox (alerting once) and holds the job without spending an attempt.
    f.handler.run(&first).await.unwrap();
    assert!(f.handler.paused("inb_w").await.unwrap().is_some());
    // Held: another message of the inbox is not sent while it is paused.
    f.handler.run(&second).await.unwrap();
    assert_eq!(f.provider.requests().len(), 1);
    let calls = f.store.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].starts_with("paused inb_w channel broken: Unauthorized"));
    let held = delayed(&f).await;
    assert_eq!(held.len(), 2, "both jobs wait in the delayed set");
    assert!(held.iter().all(|job| job.attempt == 1), "no attempt spent");

    // Resumed: the held jobs, when they come back, send.
    f.handler.resume("inb_w").await.unwrap();
    for job in held {
        f.handler.run(&job).await.unwrap();
    }
    assert_eq!(f.provider.requests().len(), 3);
    let mut sent = f.store.calls()[1..].to_vec();
    sent.sort();
    assert_eq!(sent, ["sent W3", "sent W4"]);
}

/// The jobs waiting in the deliveries queue's delayed set.
async fn delayed(f: &Fixture) -> Vec<Job> {
    let key = f
        .redis
        .queues
        .keys(&QueueName::new("deliveries").unwrap())
        .delayed;
    let mut conn = redis::Client::open(crate::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(key)
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

#[test]
fn payloads_parse_with_their_email_thread() {
    let payload = json!({
        "v": 1, "message_id": "msg_1", "tenant_id": "t", "inbox_id": "i", "session_id": "s",
        "channel": "email", "recipient": "jane@customer.example", "text": "hi",
        "email": {"subject": "Re: Order", "in_reply_to": "<c2@x>", "references": ["<c1@x>", "<c2@x>"]},
    });
    let task = DeliveryTask::from_payload(&payload).unwrap();
    let thread = task.email.unwrap();
    assert_eq!(thread.in_reply_to.as_deref(), Some("<c2@x>"));
    assert_eq!(thread.references, ["<c1@x>", "<c2@x>"]);
    let bad = DeliveryTask::from_payload(&json!({"message_id": "m"})).unwrap_err();
    assert!(matches!(bad, JobError::Permanent(_)));
}
