//! Webhook fan-out from the pipeline: an event committed by a real inbound job reaches a
//! loopback subscriber as a signed Standard Webhooks delivery, through the `webhook.fanout` job
//! the transaction staged in its outbox.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use shared::webhooks::{
    self, NewSubscription, WebhookConfig, Webhooks, fanout_job::FANOUT_KIND, signing,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::{World, stream_jobs};

/// One request: lower-cased headers and the body.
type Request = (Vec<(String, String)>, Vec<u8>);

/// A loopback HTTP server answering 200 and recording (headers, body) of every request.
struct Hook {
    url: String,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Hook {
    async fn start() -> Self {
        Self::answering(200).await
    }

    async fn answering(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let headers: Vec<(String, String)> = head
                            .lines()
                            .skip(1)
                            .filter_map(|l| l.split_once(':'))
                            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                            .collect();
                        let len: usize = headers
                            .iter()
                            .find(|(k, _)| k == "content-length")
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0);
                        if buf.len() < end + 4 + len {
                            continue;
                        }
                        let body = buf[end + 4..end + 4 + len].to_vec();
                        record.lock().unwrap().push((headers, body));
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                        let _ = socket.write_all(reply.as_bytes()).await;
                        return;
                    }
                });
            }
        });
        Self { url, seen }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

fn loopback_config() -> WebhookConfig {
    WebhookConfig {
        allow_nets: "127.0.0.0/8".parse().unwrap(),
        ..WebhookConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_event_reaches_a_subscriber_signed() {
    let mut w = World::new().await;
    let hooks =
        Webhooks::new(w.db.pool.clone(), w.redis.queues.clone(), loopback_config()).unwrap();
    // The registry with webhook kinds configured for loopback (the env has no allowance).
    webhooks::fanout_job::register(&mut w.registry, hooks.clone());
    webhooks::register(&mut w.registry, hooks.clone());
    let hook = Hook::start().await;
    let created = webhooks::subscriptions::create(
        &w.db.pool,
        &w.tenant_id,
        NewSubscription {
            url: hook.url.clone(),
            event_types: vec!["message.ready".into()],
            filters: None,
            description: None,
            retry_schedule_secs: Some(vec![1, 5, 15]),
            active: None,
        },
    )
    .await
    .unwrap();

    let job = w.waha("4915112345678@c.us", "wamid-hook-1", "hello hooks");
    w.run(&job).await.unwrap();

    // The committed transaction enqueued one fan-out job with its events.
    let fanouts: Vec<_> = stream_jobs(&w.redis, "webhooks")
        .await
        .into_iter()
        .filter(|j| j.kind == FANOUT_KIND)
        .collect();
    assert!(!fanouts.is_empty(), "no webhook.fanout job was enqueued");
    for f in &fanouts {
        w.run(f).await.unwrap();
    }
    let deliveries: Vec<_> = stream_jobs(&w.redis, "webhooks")
        .await
        .into_iter()
        .filter(|j| j.kind == webhooks::DELIVER_KIND)
        .collect();
    // The customer's message and the bot's answer: two transactions, two message.ready.
    let ready = w
        .events()
        .await
        .into_iter()
        .filter(|e| e.envelope.event_type == "message.ready")
        .count();
    assert_eq!(deliveries.len(), ready, "one delivery per message.ready");
    for d in &deliveries {
        w.run(d).await.unwrap();
    }

    let seen = hook.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), ready);
    let mut ids = Vec::new();
    for (headers, body) in &seen {
        let envelope: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(envelope["type"], "message.ready");
        assert_eq!(envelope["tenant_id"], w.tenant_id.as_str());
        let id = header(headers, "webhook-id");
        assert_eq!(id, envelope["id"].as_str().unwrap());
        let ts: i64 = header(headers, "webhook-timestamp").parse().unwrap();
        let expected = signing::sign(&created.secret, id, ts, body).unwrap();
        assert!(
            header(headers, "webhook-signature")
                .split(' ')
                .any(|s| s == expected),
            "signature does not verify"
        );
        let mut altered = body.clone();
        altered.push(b' ');
        let wrong = signing::sign(&created.secret, id, ts, &altered).unwrap();
        assert!(!header(headers, "webhook-signature").contains(&wrong));
        ids.push(id.to_owned());
    }
    // The logged event is the one delivered.
    let logged = w.events().await;
    assert!(
        ids.iter()
            .all(|id| logged.iter().any(|e| &e.envelope.id == id))
    );
    // Replay: the delivered events again, oldest first, with their original webhook-id.
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let replayed = hooks
        .replay(&w.tenant_id, &created.subscription.id, since)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replayed.event_ids.len(), ready);
    let again: Vec<_> = stream_jobs(&w.redis, "webhooks")
        .await
        .into_iter()
        .filter(|j| j.kind == webhooks::DELIVER_KIND && j.payload["attempt"] == 2)
        .collect();
    assert_eq!(again.len(), ready);
    for d in &again {
        w.run(d).await.unwrap();
    }
    let seen = hook.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2 * ready);
    let mut replayed_ids: Vec<String> = seen[ready..]
        .iter()
        .map(|(h, _)| header(h, "webhook-id").to_owned())
        .collect();
    replayed_ids.sort();
    ids.sort();
    assert_eq!(replayed_ids, ids);

    // A subscription created later gets every matching event it never saw.
    let late = webhooks::subscriptions::create(
        &w.db.pool,
        &w.tenant_id,
        NewSubscription {
            url: hook.url.clone(),
            event_types: vec!["*".into()],
            ..NewSubscription::default()
        },
    )
    .await
    .unwrap();
    let replayed = hooks
        .replay(&w.tenant_id, &late.subscription.id, since)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replayed.event_ids.len(), logged.len());
    // Another tenant's subscription id is not found.
    let (other, _) = super::tenant(&w.db, "Other").await;
    assert!(
        hooks
            .replay(&other, &late.subscription.id, since)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_subscription_is_logged_and_broadcast_as_an_event() {
    let mut w = World::new().await;
    let hooks = Webhooks::new(w.db.pool.clone(), w.redis.queues.clone(), loopback_config())
        .unwrap()
        .on_disabled(webhooks::fanout_job::emit_disabled(
            w.pipeline.conversations.clone(),
        ));
    webhooks::fanout_job::register(&mut w.registry, hooks.clone());
    webhooks::register(&mut w.registry, hooks.clone());
    let gone = Hook::answering(410).await;
    let created = webhooks::subscriptions::create(
        &w.db.pool,
        &w.tenant_id,
        NewSubscription {
            url: gone.url.clone(),
            event_types: vec!["session.created".into()],
            ..NewSubscription::default()
        },
    )
    .await
    .unwrap();
    let subscriber = w.subscribe(&w.tenant_id).await;
    w.run(&w.waha("4915112345678@c.us", "wamid-gone-1", "hi"))
        .await
        .unwrap();
    for f in stream_jobs(&w.redis, "webhooks").await {
        if f.kind == FANOUT_KIND {
            w.run(&f).await.unwrap();
        }
    }
    for d in stream_jobs(&w.redis, "webhooks").await {
        if d.kind == webhooks::DELIVER_KIND {
            w.run(&d).await.unwrap();
        }
    }
    // 410 Gone disables at once; the hook logs and broadcasts subscription.disabled.
    super::eventually("subscription.disabled in the log", || async {
        w.event_types()
            .await
            .iter()
            .any(|t| t == "subscription.disabled")
    })
    .await;
    let event = w
        .events()
        .await
        .into_iter()
        .find(|e| e.envelope.event_type == "subscription.disabled")
        .unwrap();
    assert_eq!(event.aggregate_id, created.subscription.id);
    assert_eq!(
        event.envelope.data["subscription_id"],
        created.subscription.id.as_str()
    );
    assert!(event.channels.iter().any(|c| c.ends_with(".messages")));
    super::eventually("subscription.disabled broadcast", || async {
        subscriber
            .seen()
            .iter()
            .any(|(_, p)| p["event"] == "subscription.disabled")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_without_subscriptions_stages_no_fan_out_and_one_with_a_paused_one_does() {
    let w = World::new().await;
    let job = w.waha("4915112345678@c.us", "wamid-nosub-1", "hello");
    w.run(&job).await.unwrap();
    let fanouts =
        |jobs: Vec<shared::queue::Job>| jobs.into_iter().filter(|j| j.kind == FANOUT_KIND).count();
    assert_eq!(
        fanouts(stream_jobs(&w.redis, "webhooks").await),
        0,
        "nothing to fan out to, so no job"
    );
    assert!(
        !w.event_types().await.is_empty(),
        "the events are logged all the same"
    );

    // An inactive subscription holds its events, so it needs the fan-out too.
    webhooks::subscriptions::create(
        &w.db.pool,
        &w.tenant_id,
        NewSubscription {
            url: "https://hooks.example.com/paused".into(),
            event_types: vec!["*".into()],
            filters: None,
            description: None,
            retry_schedule_secs: None,
            active: Some(false),
        },
    )
    .await
    .unwrap();
    let job = w.waha("4915112345678@c.us", "wamid-nosub-2", "again");
    w.run(&job).await.unwrap();
    assert_eq!(fanouts(stream_jobs(&w.redis, "webhooks").await), 1);
}
