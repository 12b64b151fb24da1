//! The bots: an HTTP bot on loopback (its answers, handoffs, timeouts and errors), intents
//! configured in the database and in a rules file, and an inbox with no bot.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use shared::{
    bot::{Bots, RulesFile},
    conversation::settings::{self, BotKind, InboxSettings, IntentRule},
    events::Broadcaster,
    jobs::JobError,
};
use worker::handlers::Pipeline;

use crate::World;

/// What the fake detect-intent service does next.
#[derive(Clone)]
enum Behaviour {
    Answer(u16, String),
    Hang(Duration),
}

/// A detect-intent service on loopback that records what it was asked.
struct BotServer {
    addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    asked: Arc<Mutex<Vec<Value>>>,
}

impl BotServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let behaviour = Arc::new(Mutex::new(Behaviour::Answer(200, "{}".into())));
        let asked: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (b, a) = (behaviour.clone(), asked.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (b, a) = (b.clone(), a.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (b, a) = (b.clone(), a.clone());
                    async move {
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        a.lock()
                            .unwrap()
                            .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                        let behaviour = b.lock().unwrap().clone();
                        let (status, text) = match behaviour {
                            Behaviour::Answer(status, text) => (status, text),
                            Behaviour::Hang(d) => {
                                tokio::time::sleep(d).await;
                                (200, "{}".to_owned())
                            }
                        };
                        let mut response = Response::new(Full::new(Bytes::from(text)));
                        *response.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self {
            addr,
            behaviour,
            asked,
        }
    }

    fn will(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }
}

async fn use_http_bot(w: &World, server: &BotServer) {
    let mut conn = w.db.pool.get().await.unwrap();
    let s = InboxSettings {
        bot: BotKind::Http,
        bot_url: Some(format!("http://{}/detect-intent", server.addr)),
        bot_timeout_ms: 300,
        ..InboxSettings::defaults(&w.inbox_id)
    };
    settings::save(&mut conn, &s).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_bot_answers_hands_off_and_its_failures_are_classified() {
    let w = World::new().await;
    let server = BotServer::start().await;
    use_http_bot(&w, &server).await;

    server.will(Behaviour::Answer(
        200,
        json!({"reply": "Your parcel ships today.", "intent": "order_status"}).to_string(),
    ));
    w.run(&w.waha("1@c.us", "m1", "where is my parcel?"))
        .await
        .unwrap();
    let asked = server.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["text"], "where is my parcel?");
    assert_eq!(asked[0]["inbox_id"], w.inbox_id.as_str());
    assert!(asked[0]["session_id"].as_str().unwrap().starts_with("ses_"));
    assert_eq!(
        w.deliveries().await[0].payload["text"],
        "Your parcel ships today."
    );
    // A U+0000 in the bot's answer (Postgres stores none) is written as U+FFFD, not a reply
    // that fails to store on every retry.
    server.will(Behaviour::Answer(
        200,
        json!({"reply": "Ships\u{0} today.", "intent": "order\u{0}"}).to_string(),
    ));
    w.run(&w.waha("1@c.us", "m-nul", "and the other one?"))
        .await
        .unwrap();
    assert_eq!(
        w.deliveries().await[1].payload["text"],
        "Ships\u{FFFD} today."
    );

    for (behaviour, transient) in [
        (Behaviour::Hang(Duration::from_secs(2)), true),
        (Behaviour::Answer(503, "busy".into()), true),
        (Behaviour::Answer(429, "slow down".into()), true),
        (Behaviour::Answer(400, "bad request".into()), false),
        (Behaviour::Answer(200, "not json".into()), false),
    ] {
        server.will(behaviour);
        let error = w
            .run(&w.waha("1@c.us", &ulid::Ulid::new().to_string(), "hmm"))
            .await
            .unwrap_err();
        assert_eq!(
            matches!(error, JobError::Transient(_)),
            transient,
            "{error:?}"
        );
    }

    server.will(Behaviour::Answer(
        200,
        json!({"reply": "A human will help you.", "handoff": true, "intent": "human"}).to_string(),
    ));
    w.run(&w.waha("1@c.us", "m-handoff", "I need a human"))
        .await
        .unwrap();
    let types = w.event_types().await;
    assert!(types.contains(&"queue_item.created".to_owned()));
    let postback = w
        .events()
        .await
        .into_iter()
        .find(|e| e.envelope.event_type == "message.postback")
        .unwrap();
    assert_eq!(
        postback.envelope.data["trigger"],
        json!({"kind": "intent", "intent": "human"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn intents_from_the_database_then_the_rules_file_then_the_builtins_and_no_bot_at_all() {
    let w = World::new().await;
    let mut conn = w.db.pool.get().await.unwrap();
    let refund = IntentRule {
        name: "refund".into(),
        patterns: vec!["refund".into(), "/money\\s+back/".into()],
        reply: Some("Refunds take 5 days.".into()),
        handoff: false,
        priority: 1,
    };
    settings::save_intent(&mut conn, &w.inbox_id, &refund)
        .await
        .unwrap();
    w.run(&w.waha("1@c.us", "m1", "I want my money  back"))
        .await
        .unwrap();
    assert_eq!(
        w.deliveries().await[0].payload["text"],
        "Refunds take 5 days."
    );

    // A second inbox configured by a rules file only.
    let (tenant, inbox) = crate::tenant(&w.db, "Filed").await;
    let file: RulesFile = serde_json::from_value(json!({
        "fallback_reply": "File fallback.",
        "inboxes": { inbox.clone(): { "intents": [
            {"name": "hours", "patterns": ["opening hours"], "reply": "9 to 5."}
        ]}}
    }))
    .unwrap();
    let bots = Bots::new(w.db.pool.clone(), file, Duration::ZERO);
    let broadcaster = Broadcaster::new(w.redis.queues.clone(), w.broadcast_prefix.clone());
    let pipeline = Pipeline::new(w.db.pool.clone(), w.redis.queues.clone(), broadcaster, bots);
    let registry = worker::registry::with_pipeline(w.db.pool.clone(), pipeline);
    let job = |id: &str, text: &str| crate::waha_job(&tenant, &inbox, "2@c.us", id, text);
    registry
        .dispatch(job("f1", "what are your opening hours?"))
        .await
        .unwrap();
    registry.dispatch(job("f2", "hello")).await.unwrap();
    let texts: Vec<String> = w
        .deliveries()
        .await
        .iter()
        .skip(1)
        .map(|j| j.payload["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        texts,
        ["9 to 5.", "File fallback."],
        "the file's intents replace the built-ins"
    );

    // An inbox with the bot off: straight to the agents, no bot reply.
    let off = InboxSettings {
        bot: BotKind::Off,
        ..InboxSettings::defaults(&w.inbox_id)
    };
    settings::save(&mut conn, &off).await.unwrap();
    w.run(&w.waha("3@c.us", "m3", "hello")).await.unwrap();
    let types = w.event_types().await;
    let tail: Vec<&str> = types
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "session.created",
            "message.ready",
            "queue_item.created",
            "session.path_changed",
            "case.created"
        ],
        "no agents yet: the case waits"
    );
    // The session was created and handed off in one transaction: versions 1 and 2 of its
    // history, numbered by the one statement that appended them, in emit order.
    let events = w.events().await;
    let session = &events
        .iter()
        .rev()
        .find(|e| e.envelope.event_type == "session.created")
        .unwrap()
        .aggregate_id;
    let history: Vec<(i64, i32, &str)> = events
        .iter()
        .filter(|e| &e.aggregate_id == session)
        .map(|e| (e.seq, e.aggregate_version, e.envelope.event_type.as_str()))
        .collect();
    assert_eq!(history.len(), 2);
    assert!(history[0].0 < history[1].0);
    assert_eq!(
        (history[0].1, history[0].2, history[1].1, history[1].2),
        (1, "session.created", 2, "session.path_changed")
    );
}
