//! Effectively once: the same job run twice, the same webhook delivered twice (two jobs, one
//! provider message id), a bot outage between storing and answering, and a Redis outage at
//! publish time — each leaves one message, one answer and one set of events, and loses none.

use std::time::Duration;

use shared::{
    conversation::settings::{self, BotKind, InboxSettings},
    events::Broadcaster,
    jobs::JobRegistry,
    queue::Queues,
    testkit::unique,
};
use worker::handlers::Pipeline;

use crate::{World, waha_job};

#[tokio::test(flavor = "multi_thread")]
async fn the_same_job_twice_and_the_same_webhook_twice_store_one_message_and_one_set_of_events() {
    let w = World::new().await;
    let subscriber = w.subscribe(&w.tenant_id).await;
    let job = w.waha("1@c.us", "wamid-dup", "hello");
    w.run(&job).await.unwrap();
    let events = w.events().await;
    let broadcasts = subscriber.wait_for(7).await.len();
    w.run(&job).await.unwrap();
    // The provider redelivers: ingress's Redis dedup window has passed, a new job id.
    let mut again = w.waha("1@c.us", "wamid-dup", "hello");
    again.correlation_id = "another-request".into();
    w.run(&again).await.unwrap();
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE direction = 'inbound'")
            .await,
        1
    );
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE direction = 'outbound'")
            .await,
        1
    );
    assert_eq!(w.count("SELECT 1 FROM contacts").await, 1);
    assert_eq!(w.count("SELECT 1 FROM sessions").await, 1);
    assert_eq!(w.events().await, events, "no event was added");
    assert_eq!(w.deliveries().await.len(), 1);
    assert_eq!(
        subscriber.settle().await.len(),
        broadcasts,
        "nothing was broadcast again"
    );
}

/// A rerun right on the heels of the first run (the queue reclaiming a job whose ack was lost)
/// may come before the first run's outbox rows are cleaned up: those rows went out and must not
/// be taken for unsent and published again.
#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_right_after_the_first_run_publishes_nothing_again() {
    let w = World::new().await;
    let subscriber = w.subscribe(&w.tenant_id).await;
    // The first run's rows wait for their cleanup for as long as the test runs.
    let mut pipeline = crate::pipeline(&w.db, &w.redis, &w.broadcast_prefix);
    pipeline.conversations.outbox = pipeline
        .conversations
        .outbox
        .clone()
        .cleaning_up_after(Duration::from_secs(3600));
    let registry = worker::registry::with_pipeline(w.db.pool.clone(), pipeline);
    let job = w.waha("1@c.us", "wamid-quick", "hello");
    registry.dispatch(job.clone()).await.unwrap();
    assert_eq!(
        w.count("SELECT 1 FROM event_outbox").await,
        3,
        "went out, not cleaned up"
    );
    registry.dispatch(job).await.unwrap();
    assert_eq!(subscriber.wait_for(7).await.len(), 7);
    assert_eq!(
        subscriber.settle().await.len(),
        7,
        "nothing was broadcast twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bot_outage_after_storing_is_retried_and_answered_once() {
    let w = World::new().await;
    let mut conn = w.db.pool.get().await.unwrap();
    let down = InboxSettings {
        bot: BotKind::Http,
        bot_url: Some("http://127.0.0.1:9/detect-intent".into()),
        bot_timeout_ms: 200,
        ..InboxSettings::defaults(&w.inbox_id)
    };
    settings::save(&mut conn, &down).await.unwrap();
    let job = w.waha("1@c.us", "wamid-1", "hello");
    let error = w.run(&job).await.unwrap_err();
    assert!(
        matches!(error, shared::jobs::JobError::Transient(_)),
        "{error:?}"
    );
    assert_eq!(
        w.event_types().await,
        ["session.created", "message.ready"],
        "stored before the bot"
    );
    assert_eq!(w.deliveries().await.len(), 0);

    // The bot is back (here: the rules bot); the queue retries the same job.
    settings::save(&mut conn, &InboxSettings::defaults(&w.inbox_id))
        .await
        .unwrap();
    let retry = job.next_attempt(&error.to_string());
    w.run(&retry).await.unwrap();
    w.run(&retry).await.unwrap();
    assert_eq!(
        w.event_types().await,
        ["session.created", "message.ready", "message.ready"],
        "one bot answer"
    );
    assert_eq!(w.deliveries().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_outage_at_publish_time_loses_no_event_and_no_delivery() {
    let w = World::new().await;
    let subscriber = w.subscribe(&w.tenant_id).await;
    // A webhook subscription, so that the transactions also stage their fan-out jobs.
    shared::webhooks::subscriptions::create(
        &w.db.pool,
        &w.tenant_id,
        shared::webhooks::NewSubscription {
            url: "https://hooks.example.com/switchyard".into(),
            event_types: vec!["*".into()],
            filters: None,
            description: None,
            retry_schedule_secs: None,
            active: None,
        },
    )
    .await
    .unwrap();
    // A worker whose Redis is unreachable once the database work is done.
    let registry = cut_off_from_redis(&w);
    let job = waha_job(&w.tenant_id, &w.inbox_id, "1@c.us", "wamid-1", "hello");
    registry.dispatch(job).await.unwrap();
    assert_eq!(w.event_types().await.len(), 3, "the events are in the log");
    assert_eq!(
        w.count("SELECT 1 FROM event_outbox").await,
        3,
        "and waiting to be published"
    );
    assert_eq!(
        w.count("SELECT 1 FROM job_outbox WHERE job->>'kind' = 'delivery.send'")
            .await,
        1,
        "the delivery waits too"
    );
    // So do the webhook fan-out jobs, one per transaction that logged events.
    let fanouts = w
        .count("SELECT 1 FROM job_outbox WHERE job->>'kind' = 'webhook.fanout'")
        .await;
    assert!(fanouts >= 1);
    assert!(subscriber.settle().await.is_empty());
    assert!(w.deliveries().await.is_empty());

    // Any healthy process's relay sends them, in log order.
    let sent = w
        .conversations()
        .outbox
        .relay_stale(Duration::ZERO, 100)
        .await
        .unwrap();
    assert_eq!(sent, 4 + fanouts as usize);
    let seen = subscriber.wait_for(7).await;
    let order: Vec<&str> = seen
        .iter()
        .map(|(_, p)| p["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "session.created",
            "message.ready",
            "message.ready",
            "message.ready",
            "message.ready",
            "message.ready",
            "message.ready"
        ]
    );
    assert_eq!(w.deliveries().await.len(), 1);
    // Rows of what went out are deleted shortly after; now, for the count.
    w.conversations().outbox.flush_forgotten().await.unwrap();
    assert_eq!(w.count("SELECT 1 FROM event_outbox").await, 0);
    assert_eq!(w.count("SELECT 1 FROM job_outbox").await, 0);
    // Relaying again sends nothing twice.
    assert_eq!(
        w.conversations()
            .outbox
            .relay_stale(Duration::ZERO, 100)
            .await
            .unwrap(),
        0
    );
    let _ = unique("x");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_retry_of_a_job_that_died_before_publishing_publishes_what_it_committed() {
    let w = World::new().await;
    let subscriber = w.subscribe(&w.tenant_id).await;
    // The first attempt commits everything, then cannot reach Redis (as if it died there).
    let first = cut_off_from_redis(&w);
    let job = w.waha("1@c.us", "wamid-1", "hello");
    first.dispatch(job.clone()).await.unwrap();
    assert_eq!(w.count("SELECT 1 FROM event_outbox").await, 3);
    // The queue runs it again (reclaimed after the crash): nothing new is stored, and what the
    // first attempt staged goes out now, without waiting for the relay.
    w.run(&job).await.unwrap();
    w.conversations().outbox.flush_forgotten().await.unwrap();
    assert_eq!(w.count("SELECT 1 FROM event_outbox").await, 0);
    assert_eq!(w.count("SELECT 1 FROM job_outbox").await, 0);
    assert_eq!(w.event_types().await.len(), 3);
    assert_eq!(subscriber.wait_for(7).await.len(), 7);
    assert_eq!(w.deliveries().await.len(), 1);
}

/// A settle leaves its outbox rows to a cleanup shared with other settles, a moment later: they
/// go without anyone flushing (left forever, the relay would send them again every time it ran).
#[tokio::test(flavor = "multi_thread")]
async fn what_went_out_leaves_the_outbox_shortly_after_without_a_flush() {
    let w = World::new().await;
    for i in 0..3 {
        let job = w.waha(&format!("{i}@c.us"), &format!("wamid-{i}"), "hello");
        w.run(&job).await.unwrap();
    }
    assert_eq!(w.event_types().await.len(), 9, "three conversations logged");
    // Generous: the cleanup is due 20 ms after the first settle it carries.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left =
            w.count("SELECT 1 FROM event_outbox").await + w.count("SELECT 1 FROM job_outbox").await;
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} outbox rows are still there"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outbox_row_whose_event_was_pruned_is_dropped_by_the_relay() {
    use diesel_async::SimpleAsyncConnection as _;
    let w = World::new().await;
    let subscriber = w.subscribe(&w.tenant_id).await;
    // Committed, never published: Redis was unreachable.
    let registry = cut_off_from_redis(&w);
    let job = w.waha("1@c.us", "wamid-1", "hello");
    registry.dispatch(job).await.unwrap();
    assert_eq!(w.count("SELECT 1 FROM event_outbox").await, 3);
    // Retention prunes one of the three events before the relay got to it (the outbox has no
    // key to the log, so its row stays).
    let mut conn = w.db.pool.get().await.unwrap();
    conn.batch_execute(&format!(
        "BEGIN; SET LOCAL switchyard.prune_events = 'on'; \
         DELETE FROM event_logs WHERE tenant_id = '{}' AND type = 'session.created'; COMMIT;",
        w.tenant_id
    ))
    .await
    .unwrap();
    drop(conn);
    assert_eq!(w.count("SELECT 1 FROM event_outbox").await, 3);

    let sent = w
        .conversations()
        .outbox
        .relay_stale(Duration::ZERO, 100)
        .await
        .unwrap();
    assert_eq!(
        sent,
        2 + 1,
        "two events and the delivery job, not the pruned event"
    );
    assert_eq!(
        w.count("SELECT 1 FROM event_outbox").await,
        0,
        "all three rows gone"
    );
    let seen = subscriber.settle().await;
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|(_, p)| p["event"] == "message.ready"),
        "{seen:?}"
    );
}

/// A worker whose Redis is unreachable: its jobs commit everything in Postgres, then can neither
/// publish nor enqueue.
fn cut_off_from_redis(w: &World) -> JobRegistry {
    let dead = Queues::new("redis://127.0.0.1:1", &w.redis.prefix).unwrap();
    let bots = shared::bot::Bots::new(w.db.pool.clone(), Default::default(), Duration::ZERO);
    let broadcaster = Broadcaster::new(dead.clone(), w.broadcast_prefix.clone());
    let cut_off = Pipeline::new(w.db.pool.clone(), dead, broadcaster, bots);
    worker::registry::with_pipeline(w.db.pool.clone(), cut_off)
}
