//! Group commit (worker/src/handlers/batch.rs): store steps of several jobs in one transaction,
//! each job keeping its own events and outcome; anything that cannot share (a handoff, a failing
//! step) makes every step run alone instead.

use std::time::Duration;

use shared::jobs::JobError;
use worker::handlers::batch::handle_together;

use crate::{World, only_session, tenant, waha_job};

/// Transactions that wrote the inbound messages (`xmin` is the writing transaction's id).
const INBOUND_WRITERS: &str =
    "SELECT DISTINCT xmin::text FROM messages WHERE direction = 'inbound'";

#[tokio::test(flavor = "multi_thread")]
async fn several_customers_messages_share_one_transaction_and_keep_their_own_events() {
    let mut w = World::new().await;
    // Sent rows stay in the outbox for a minute, so that their origins can be read.
    w.pipeline.conversations.outbox = w
        .pipeline
        .conversations
        .outbox
        .clone()
        .cleaning_up_after(Duration::from_secs(60));
    let jobs: Vec<_> = (0..4)
        .map(|c| w.waha(&format!("{c}@c.us"), &format!("m-{c}"), "hello"))
        .collect();
    let outcomes = handle_together(&w.pipeline, &jobs).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");

    assert_eq!(w.count(INBOUND_WRITERS).await, 1, "one transaction");
    assert_eq!(w.count("SELECT 1 FROM contacts").await, 4);
    assert_eq!(w.count("SELECT 1 FROM sessions").await, 4);
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE sender_type = 'bot'")
            .await,
        4
    );
    // Each job's events carry its own id as causation: session.created and two message.ready.
    for job in &jobs {
        let sql = format!(
            "SELECT type FROM event_logs WHERE causation_id = '{}'",
            job.id
        );
        assert_eq!(w.count(&sql).await, 3, "events of {}", job.id);
    }
    // One delivery per bot reply, enqueued, and staged under the job that made it (a rerun of
    // that job finds it by its id).
    assert_eq!(w.deliveries().await.len(), 4);
    for job in &jobs {
        let sql = format!("SELECT 1 FROM job_outbox WHERE origin = '{}'", job.id);
        assert_eq!(w.count(&sql).await, 1, "the delivery staged by {}", job.id);
    }
    assert_eq!(w.count("SELECT 1 FROM event_outbox").await, 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handoff_makes_every_step_run_in_a_transaction_of_its_own() {
    let w = World::new().await;
    w.agent("Dana", 3).await;
    // The handoff comes first in the transaction's (customer) order: a shared transaction
    // refuses it from its first step on.
    let jobs = vec![
        w.waha("b@c.us", "m-b", "hello"),
        w.waha("a@c.us", "m-a", "agent"),
        w.waha("c@c.us", "m-c", "hello"),
    ];
    let outcomes = handle_together(&w.pipeline, &jobs).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");

    assert_eq!(w.count(INBOUND_WRITERS).await, 3, "each step alone");
    assert_eq!(w.count("SELECT 1 FROM sessions").await, 3);
    assert_eq!(
        w.count("SELECT 1 FROM sessions WHERE state = 'live'").await,
        1
    );
    assert_eq!(w.count("SELECT 1 FROM cases").await, 1);
    let types = w.event_types().await;
    assert_eq!(types.iter().filter(|t| *t == "agent.assigned").count(), 1);
    // The rolled-back attempt left nothing behind: every aggregate's versions are 1..n once.
    assert_eq!(
        w.count(
            "SELECT aggregate_id FROM event_logs GROUP BY aggregate_type, aggregate_id \
             HAVING max(aggregate_version) <> count(*)"
        )
        .await,
        0
    );
    assert_eq!(types.iter().filter(|t| *t == "session.created").count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_fails_only_its_own_job() {
    let w = World::new().await;
    // A job that names this tenant but another tenant's inbox: its step fails (not found).
    let (_, foreign_inbox) = tenant(&w.db, "Other").await;
    let jobs = vec![
        w.waha("a@c.us", "m-a", "hello"),
        waha_job(&w.tenant_id, &foreign_inbox, "x@c.us", "m-x", "hello"),
        w.waha("c@c.us", "m-c", "hello"),
    ];
    let outcomes = handle_together(&w.pipeline, &jobs).await;
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    assert!(
        matches!(&outcomes[1], Err(JobError::Permanent(e)) if e.contains("not found")),
        "{outcomes:?}"
    );
    assert!(outcomes[2].is_ok(), "{outcomes:?}");
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE direction = 'inbound'")
            .await,
        2
    );
    assert_eq!(w.count(INBOUND_WRITERS).await, 2, "each step alone");
    assert_eq!(w.count("SELECT 1 FROM contacts").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_message_twice_in_one_transaction_is_stored_and_answered_once() {
    let w = World::new().await;
    let first = w.waha("a@c.us", "m-1", "hello");
    let redelivered = w.waha("a@c.us", "m-1", "hello");
    let outcomes = handle_together(&w.pipeline, &[first, redelivered]).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE direction = 'inbound'")
            .await,
        1
    );
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE sender_type = 'bot'")
            .await,
        1
    );
    assert_eq!(w.count(INBOUND_WRITERS).await, 1, "one transaction");
    assert_eq!(w.deliveries().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_arriving_together_share_transactions_through_the_handler() {
    // Forty customers' first messages at once through the registry, one store transaction at a
    // time: all but the first wait for it and go together into the next ones.
    let mut w = World::new().await;
    w.pipeline = w.pipeline.clone().batching_stores(1, 8);
    w.registry = worker::registry::with_pipeline(w.db.pool.clone(), w.pipeline.clone());
    let jobs: Vec<_> = (0..40)
        .map(|c| w.waha(&format!("{c}@c.us"), &format!("m-{c}"), "hello"))
        .collect();
    let outcomes = futures::future::join_all(jobs.iter().map(|j| w.run(j))).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE direction = 'inbound'")
            .await,
        40
    );
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE sender_type = 'bot'")
            .await,
        40
    );
    let writers = w.count(INBOUND_WRITERS).await;
    assert!(
        (5..40).contains(&writers),
        "40 messages in {writers} transactions (at most 8 each, fewer than one each)"
    );
    assert_eq!(w.deliveries().await.len(), 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_subscription_each_step_stages_its_own_fan_out_of_its_own_events() {
    use shared::webhooks::{self, NewSubscription, fanout_job::FANOUT_KIND};
    let w = World::new().await;
    webhooks::subscriptions::create(
        &w.db.pool,
        &w.tenant_id,
        NewSubscription {
            url: "https://hooks.example.com/all".into(),
            event_types: vec!["*".into()],
            filters: None,
            description: None,
            retry_schedule_secs: None,
            active: Some(false),
        },
    )
    .await
    .unwrap();
    let jobs: Vec<_> = (0..3)
        .map(|c| w.waha(&format!("{c}@c.us"), &format!("m-{c}"), "hello"))
        .collect();
    let outcomes = handle_together(&w.pipeline, &jobs).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(w.count(INBOUND_WRITERS).await, 1, "one transaction");

    let fanouts: Vec<_> = crate::stream_jobs(&w.redis, "webhooks")
        .await
        .into_iter()
        .filter(|j| j.kind == FANOUT_KIND)
        .collect();
    assert_eq!(fanouts.len(), 3, "one fan-out per step");
    for fanout in &fanouts {
        let ids: Vec<String> = serde_json::from_value(fanout.payload["event_ids"].clone()).unwrap();
        assert_eq!(ids.len(), 3, "session.created and two message.ready");
        let causes = format!(
            "SELECT DISTINCT causation_id FROM event_logs WHERE id IN ('{}')",
            ids.join("','")
        );
        assert_eq!(w.count(&causes).await, 1, "all of one step's events");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn known_and_new_customers_in_one_transaction_each_find_their_own_conversation() {
    // The batch looks every sender up in one exchange before its steps run.
    let w = World::new().await;
    for customer in ["a@c.us", "b@c.us"] {
        w.run(&w.waha(customer, &format!("{customer}-1"), "hello"))
            .await
            .unwrap();
    }
    let jobs = vec![
        w.waha("b@c.us", "b@c.us-2", "hello"),
        w.waha("c@c.us", "c@c.us-1", "hello"),
        w.waha("a@c.us", "a@c.us-2", "hello"),
    ];
    let outcomes = handle_together(&w.pipeline, &jobs).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");

    assert_eq!(
        w.count(INBOUND_WRITERS).await,
        3,
        "two alone, then one shared"
    );
    assert_eq!(w.count("SELECT 1 FROM contacts").await, 3);
    assert_eq!(w.count("SELECT 1 FROM sessions").await, 3);
    // a's and b's follow-ups joined their open sessions.
    assert_eq!(
        w.count(
            "SELECT session_id FROM messages WHERE direction = 'inbound' \
             GROUP BY session_id HAVING count(*) = 2"
        )
        .await,
        2
    );
    let types = w.event_types().await;
    assert_eq!(types.iter().filter(|t| *t == "session.created").count(), 3);
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE sender_type = 'bot'")
            .await,
        5
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customers_two_unrecognised_messages_in_one_transaction_count_twice() {
    // The second step must see the session as the first left it (unrecognised count 1), not as
    // a look-up made for both before either ran found it.
    let w = World::new().await;
    w.run(&w.waha("a@c.us", "a-0", "hello")).await.unwrap();
    let jobs = vec![
        w.waha("a@c.us", "a-1", "where is my parcel"),
        w.waha("a@c.us", "a-2", "it was due monday"),
        w.waha("z@c.us", "z-1", "hello"),
    ];
    let outcomes = handle_together(&w.pipeline, &jobs).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(
        w.count(INBOUND_WRITERS).await,
        2,
        "one alone, then one shared"
    );
    assert_eq!(
        w.count("SELECT 1 FROM sessions WHERE unrecognised_count = 2")
            .await,
        1,
        "a's session counted both"
    );
    // A third would hand off (the default limit is three); two do not.
    assert_eq!(w.count("SELECT 1 FROM queue_items").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_whose_session_closed_gets_a_new_session_on_the_same_contact() {
    // The look-up finds no open session, the contact-and-session insert finds the contact: the
    // step locks the contact and opens a session for it — alone and in a shared transaction.
    let w = World::new().await;
    for customer in ["a@c.us", "b@c.us"] {
        w.run(&w.waha(customer, &format!("{customer}-1"), "hello"))
            .await
            .unwrap();
    }
    {
        use diesel_async::SimpleAsyncConnection as _;
        let mut conn = w.db.pool.get().await.unwrap();
        conn.batch_execute("UPDATE sessions SET state = 'closed', closed_at = now()")
            .await
            .unwrap();
    }
    w.run(&w.waha("a@c.us", "a@c.us-2", "hello")).await.unwrap();
    let outcomes = handle_together(
        &w.pipeline,
        &[
            w.waha("b@c.us", "b@c.us-2", "hello"),
            w.waha("c@c.us", "c@c.us-1", "hello"),
        ],
    )
    .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");

    assert_eq!(w.count("SELECT 1 FROM contacts").await, 3);
    assert_eq!(
        w.count("SELECT 1 FROM sessions WHERE state = 'closed'")
            .await,
        2
    );
    assert_eq!(
        w.count("SELECT 1 FROM sessions WHERE state = 'bot'").await,
        3
    );
    // Every contact's latest message is in its open session.
    assert_eq!(
        w.count(
            "SELECT 1 FROM messages m JOIN sessions s ON s.id = m.session_id \
             WHERE m.provider_message_id IN ('a@c.us-2', 'b@c.us-2', 'c@c.us-1') \
               AND s.state = 'bot'"
        )
        .await,
        3
    );
    let types = w.event_types().await;
    assert_eq!(types.iter().filter(|t| *t == "session.created").count(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn steps_taking_turns_keep_their_own_decisions_and_log_their_events_together() {
    // A shared transaction runs its steps statement by statement (all look-ups, all messages,
    // all plain bot replies, each in one exchange). Whatever each step's decision — a plain
    // reply, an unrecognised message, a duplicate, a CSAT answer (applied in its turn), a
    // customer's second message (a round of its own) — each gets its own outcome, and its events
    // are logged together, in the order it emitted them.
    let w = World::new().await;
    // d answers a CSAT survey: handed off, assigned, case closed.
    w.run(&w.waha("d@c.us", "d-1", "hello")).await.unwrap();
    let d_session = only_session(&w).await;
    w.agent("Dana", 3).await;
    w.run(&w.waha("d@c.us", "d-2", "agent")).await.unwrap();
    let case = w.open_case(&d_session).await;
    w.close(&w.tenant_id, &case.id, "parcel_resent", "positive")
        .await
        .unwrap();
    for customer in ["a", "b", "c"] {
        let job = w.waha(
            &format!("{customer}@c.us"),
            &format!("{customer}-1"),
            "hello",
        );
        w.run(&job).await.unwrap();
    }
    let before = w.count("SELECT 1 FROM event_logs").await;

    let jobs = vec![
        w.waha("a@c.us", "a-2", "hello"),
        w.waha("b@c.us", "b-2", "where is my parcel"),
        w.waha("c@c.us", "c-1", "hello"),
        w.waha("d@c.us", "d-3", "5"),
        w.waha("a@c.us", "a-3", "hello again"),
    ];
    let outcomes = handle_together(&w.pipeline, &jobs).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");

    let batch_writers = "SELECT DISTINCT xmin::text FROM messages \
         WHERE provider_message_id IN ('a-2', 'b-2', 'd-3', 'a-3')";
    assert_eq!(w.count(batch_writers).await, 1, "one shared transaction");
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE provider_message_id = 'c-1'")
            .await,
        1,
        "the duplicate stored nothing"
    );
    assert_eq!(
        w.count("SELECT 1 FROM sessions WHERE unrecognised_count = 1")
            .await,
        1,
        "b's unrecognised message counted"
    );
    assert_eq!(
        w.count("SELECT 1 FROM csat_surveys WHERE state = 'responded' AND score = 5")
            .await,
        1,
        "d's answer recorded"
    );
    // a's two messages and b's got a bot reply each; d the system's thanks; c nothing.
    for (job, sender) in [(0, "bot"), (1, "bot"), (3, "system"), (4, "bot")] {
        let sql = format!(
            "SELECT 1 FROM messages r JOIN messages m \
               ON r.payload->>'in_reply_to' = m.id AND m.provider_message_id = '{}' \
             WHERE r.sender_type = '{sender}'",
            ["a-2", "b-2", "c-1", "d-3", "a-3"][job]
        );
        assert_eq!(w.count(&sql).await, 1, "the reply to job {job}");
    }

    // The batch's events: each job's together, in emit order.
    let events = w.events().await;
    let batch: Vec<_> = events[before as usize..].iter().collect();
    let causes: Vec<&str> = batch.iter().map(|e| e.causation_id.as_str()).collect();
    let mut runs: Vec<&str> = causes.clone();
    runs.dedup();
    let mut distinct = runs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        runs.len(),
        distinct.len(),
        "each job's events together: {causes:?}"
    );
    for job in [&jobs[0], &jobs[1], &jobs[4]] {
        let directions: Vec<(&str, &str)> = batch
            .iter()
            .filter(|e| e.causation_id == job.id.to_string())
            .map(|e| {
                (
                    e.envelope.event_type.as_str(),
                    e.envelope.data["message"]["direction"]
                        .as_str()
                        .unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            directions,
            [("message.ready", "inbound"), ("message.ready", "outbound")],
            "job {}",
            job.id
        );
    }
    let d_types: Vec<&str> = batch
        .iter()
        .filter(|e| e.causation_id == jobs[3].id.to_string())
        .map(|e| e.envelope.event_type.as_str())
        .collect();
    assert_eq!(
        d_types,
        ["message.ready", "csat.responded", "message.ready"]
    );
    assert!(
        batch
            .iter()
            .all(|e| e.causation_id != jobs[2].id.to_string()),
        "the duplicate told nothing"
    );
    // Every aggregate's versions are 1..n once.
    assert_eq!(
        w.count(
            "SELECT aggregate_id FROM event_logs GROUP BY aggregate_type, aggregate_id \
             HAVING max(aggregate_version) <> count(*)"
        )
        .await,
        0
    );
}
