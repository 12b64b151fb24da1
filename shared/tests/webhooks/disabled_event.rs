//! `subscription.disabled` is written by the transaction that disables the subscription: when
//! that commit is visible, the event is in the log with its broadcast and fan-out staged in the
//! outbox — before any hook runs (the harness's hook only records) — so a crash right after the
//! commit cannot lose it. Sending the staged rows publishes it and fans it out.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::json;
use shared::{
    db::schema::{event_logs, event_outbox, event_subscriptions, job_outbox},
    events::{Broadcaster, Outbox, log},
    queue::QueueName,
    testkit::redis_url,
    webhooks::{
        Outcome,
        fanout_job::{FANOUT_KIND, FanOutTask},
    },
};

use crate::{
    subscriber::{Reply, Subscriber},
    support::Harness,
};

#[tokio::test(flavor = "multi_thread")]
async fn the_disabling_transaction_logs_and_stages_subscription_disabled() {
    let h = Harness::new().await;
    let gone = Subscriber::start(Reply::status(410)).await;
    let sub = h
        .subscribe("t1", &gone.url, &["*"], json!({}))
        .await
        .subscription;
    h.webhooks
        .fan_out(&h.event("t1", "message.ready", json!({})))
        .await
        .unwrap();
    let outcomes = h.drain().await;
    let Some(Outcome::Disabled(disabled)) = outcomes.last() else {
        panic!("410 disables: {outcomes:?}");
    };
    assert!(!disabled.event_id.is_empty());

    let mut conn = h.db.pool.get().await.unwrap();
    let active: bool = event_subscriptions::table
        .find(&sub.id)
        .select(event_subscriptions::active)
        .first(&mut conn)
        .await
        .unwrap();
    assert!(!active);
    // The event is logged — by the record step, not the hook, which only pushed to a list.
    let logged = log::load(&mut conn, std::slice::from_ref(&disabled.event_id))
        .await
        .unwrap();
    assert_eq!(logged.len(), 1, "subscription.disabled is in the log");
    let event = &logged[0];
    assert_eq!(event.envelope.event_type, "subscription.disabled");
    assert_eq!(event.envelope.tenant_id, "t1");
    assert_eq!(
        (event.aggregate_type.as_str(), event.aggregate_id.as_str()),
        ("subscription", sub.id.as_str())
    );
    assert_eq!(event.envelope.data["subscription_id"], sub.id.as_str());
    assert_eq!(
        event.envelope.data["reason"],
        "the endpoint answered 410 Gone"
    );
    assert!(event.envelope.data.get("event_id").is_none());
    assert_eq!(event.channels, ["private-tenant.t1.messages"]);
    assert_eq!(event.causation_id, disabled.origin());
    let count: i64 = event_logs::table
        .filter(event_logs::event_type.eq("subscription.disabled"))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 1, "logged once");
    // Its broadcast and its fan-out wait in the outbox.
    let staged_event: Vec<String> = event_outbox::table
        .select(event_outbox::event_id)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(staged_event, std::slice::from_ref(&disabled.event_id));
    let staged_jobs: Vec<(String, serde_json::Value)> = job_outbox::table
        .select((job_outbox::origin, job_outbox::job))
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(staged_jobs.len(), 1, "{staged_jobs:?}");
    assert_eq!(staged_jobs[0].0, disabled.origin());
    assert_eq!(staged_jobs[0].1["kind"], FANOUT_KIND);
    let task: FanOutTask = serde_json::from_value(staged_jobs[0].1["payload"].clone()).unwrap();
    assert_eq!(task.event_ids, std::slice::from_ref(&disabled.event_id));
    assert_eq!(h.disabled.lock().unwrap().len(), 1, "the hook ran once");

    // Sending the origin's rows (what `emit_disabled` does after the commit, or the relay
    // later) publishes the event and enqueues its fan-out; the outbox is then empty.
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut pubsub = redis.get_async_pubsub().await.unwrap();
    let channel = format!("{}:private-tenant.t1.messages", h.redis.prefix);
    pubsub.subscribe(&channel).await.unwrap();
    let outbox = Outbox::new(
        h.db.pool.clone(),
        h.redis.queues.clone(),
        Broadcaster::new(h.redis.queues.clone(), format!("{}:", h.redis.prefix)),
    );
    assert_eq!(outbox.flush_origin(&disabled.origin()).await.unwrap(), 2);
    // A generous bound turns a lost publish into a failure instead of a hang.
    let mut messages = pubsub.on_message();
    let next = futures::StreamExt::next(&mut messages);
    let message = tokio::time::timeout(std::time::Duration::from_secs(30), next)
        .await
        .expect("subscription.disabled published")
        .unwrap();
    let payload: serde_json::Value =
        serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
    assert_eq!(payload["event"], "subscription.disabled");
    assert_eq!(payload["data"]["id"], disabled.event_id.as_str());
    outbox.flush_forgotten().await.unwrap();
    let left: i64 = event_outbox::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let key = h
        .redis
        .queues
        .keys(&QueueName::new("webhooks").unwrap())
        .stream;
    let mut redis_conn = redis.get_multiplexed_async_connection().await.unwrap();
    let queued: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut redis_conn)
        .await
        .unwrap();
    assert!(
        queued.iter().any(|(_, fields)| fields
            .iter()
            .any(|f| f.contains(FANOUT_KIND) && f.contains(&disabled.event_id))),
        "the fan-out job is enqueued: {queued:?}"
    );
}
