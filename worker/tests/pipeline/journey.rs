//! The whole journey of DESIGN.md §4 through the worker's handlers and the conversation
//! operations the API calls: a WhatsApp (WAHA) message, the bot's answer, the handoff, the
//! assignment, the agent's reply, the case closed, the CSAT survey and its answer — checking
//! the event log, every broadcast against the channel matrix, the order, the one correlation
//! id, and the `deliveries` jobs.

use serde_json::Value;

use crate::{World, expected_broadcasts, only_session};

const CUSTOMER: &str = "4915212345678@c.us";

#[tokio::test(flavor = "multi_thread")]
async fn message_bot_handoff_agent_case_csat_with_every_event_on_its_channels() {
    let w = World::new().await;
    let agent = w.agent("Dana", 2).await;
    let subscriber = w.subscribe(&w.tenant_id).await;

    // 1. The customer writes; the bot greets them.
    let first = w.waha(
        CUSTOMER,
        "wamid-1",
        "Hi, my order #1042 has not arrived yet",
    );
    let correlation = first.correlation_id.clone();
    w.run(&first).await.unwrap();
    let session = only_session(&w).await;
    let deliveries = w.deliveries().await;
    assert_eq!(
        deliveries.len(),
        1,
        "the bot's reply is enqueued for delivery"
    );
    let reply = &deliveries[0];
    assert_eq!(
        (reply.kind.as_str(), reply.queue.as_str()),
        ("delivery.send", "deliveries")
    );
    assert_eq!(reply.payload["recipient"], CUSTOMER);
    assert_eq!(reply.payload["channel"], "waha");
    assert_eq!(reply.payload["sender_type"], "bot");
    assert!(reply.payload["text"].as_str().unwrap().starts_with("Hi!"));
    assert_eq!(reply.correlation_id, correlation);

    // 2. They ask for a person (a later webhook, with its own request id).
    w.run(&w.waha(CUSTOMER, "wamid-2", "I want to talk to an agent"))
        .await
        .unwrap();
    let case = w.open_case(&session).await;
    assert_eq!(case.state, "assigned");
    assert_eq!(case.agent_id.as_deref(), Some(agent.id.as_str()));

    // 3. The agent replies, 4. closes the case, 5. the customer rates it on the channel.
    let message = w
        .reply(&w.tenant_id, &session, &agent.id, "Hi Maria, I'm on it")
        .await
        .unwrap();
    assert_eq!(message.sender_type, "agent");
    let closed = w
        .close(&w.tenant_id, &case.id, "parcel_resent", "positive")
        .await
        .unwrap();
    assert_eq!(closed.case.state, "closed");
    assert_eq!(closed.session.state, "bot");
    w.run(&w.waha(CUSTOMER, "wamid-3", "5")).await.unwrap();
    assert_eq!(
        w.count("SELECT 1 FROM csat_surveys WHERE state = 'responded' AND score = 5")
            .await,
        1
    );
    assert_eq!(
        w.count("SELECT 1 FROM agents WHERE load = 0").await,
        1,
        "the agent is free again"
    );

    let types = w.event_types().await;
    assert_eq!(
        types,
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
            "message.ready",
            "csat.responded",
            "message.ready",
        ]
    );
    let senders: Vec<String> = w
        .deliveries()
        .await
        .iter()
        .map(|j| j.payload["sender_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(senders, ["bot", "bot", "agent", "system", "system"]);

    // Every event carries the first webhook's correlation id, and every broadcast one went to
    // exactly its matrix channels, in log order, in Laravel's format.
    let events = w.events().await;
    assert!(
        events
            .iter()
            .all(|e| e.envelope.correlation_id == correlation)
    );
    let expected = expected_broadcasts(&w, &events, &session, &case.id);
    let seen = subscriber.wait_for(expected.len()).await;
    let seen_ids: Vec<(String, String)> = seen
        .iter()
        .map(|(channel, payload)| {
            (
                channel.clone(),
                payload["data"]["id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen_ids, expected,
        "broadcasts: exactly the matrix's channels, in order"
    );
    for (_, payload) in &seen {
        let object = payload.as_object().expect("a JSON object");
        assert!(object["event"].is_string() && object["data"].is_object());
        assert_eq!(object["socket"], Value::Null);
        assert_eq!(object["event"], object["data"]["type"]);
        assert_eq!(object["data"]["correlation_id"], correlation.as_str());
        assert_eq!(object["data"]["tenant_id"], w.tenant_id.as_str());
    }
    assert_eq!(
        subscriber.settle().await.len(),
        expected.len(),
        "nothing else was broadcast"
    );
    // Rows of what went out are deleted shortly after; now, for the count.
    w.conversations().outbox.flush_forgotten().await.unwrap();
    assert_eq!(
        w.count("SELECT 1 FROM event_outbox").await,
        0,
        "every broadcast left the outbox"
    );
    assert_eq!(
        w.count("SELECT 1 FROM job_outbox").await,
        0,
        "every delivery left the outbox"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_unrecognised_messages_hand_off_and_the_session_waits_for_an_agent() {
    let w = World::new().await;
    for (i, text) in ["where is my parcel", "it was due monday", "tracking 123"]
        .iter()
        .enumerate()
    {
        w.run(&w.waha(CUSTOMER, &format!("m{i}"), text))
            .await
            .unwrap();
    }
    let session = only_session(&w).await;
    let types = w.event_types().await;
    assert!(
        !types.contains(&"message.postback".to_owned()),
        "no one pressed a button"
    );
    assert_eq!(
        types.iter().filter(|t| *t == "queue_item.created").count(),
        1
    );
    let last_reply = w.deliveries().await.pop().unwrap();
    assert_eq!(last_reply.payload["text"], worker_reply());
    // No agent: the item waits, the case is unassigned.
    assert_eq!(w.open_case(&session).await.state, "created");
    assert_eq!(
        w.count("SELECT 1 FROM queue_items WHERE state = 'waiting'")
            .await,
        1
    );
    // An agent arrives: it gets the waiting session at once.
    let agent = w.agent("Late Larry", 1).await;
    let case = w.open_case(&session).await;
    assert_eq!(
        (case.state.as_str(), case.agent_id.as_deref()),
        ("assigned", Some(agent.id.as_str()))
    );
    assert_eq!(w.event_types().await.last().unwrap(), "agent.assigned");
}

fn worker_reply() -> &'static str {
    "I'm having trouble understanding. Let me connect you to an agent."
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_within_capacity_and_a_freed_agent_takes_the_next_waiting_session() {
    let w = World::new().await;
    let ann = w.agent("Ann", 1).await;
    let bob = w.agent("Bob", 1).await;
    for customer in ["1@c.us", "2@c.us", "3@c.us"] {
        w.run(&w.waha(customer, &format!("{customer}-x"), "agent please"))
            .await
            .unwrap();
    }
    let assigned: Vec<String> = w
        .events()
        .await
        .iter()
        .filter(|e| e.envelope.event_type == "agent.assigned")
        .map(|e| e.envelope.data["agent"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        assigned,
        [ann.id.clone(), bob.id.clone()],
        "one each, round robin"
    );
    assert_eq!(
        w.count("SELECT 1 FROM queue_items WHERE state = 'waiting'")
            .await,
        1
    );
    // Ann closes her case: the third customer, waiting longest, goes to Ann.
    let ann_case = w
        .events()
        .await
        .into_iter()
        .find(|e| e.envelope.event_type == "agent.assigned")
        .unwrap()
        .envelope
        .data["case"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.close(&w.tenant_id, &ann_case, "answered", "neutral")
        .await
        .unwrap();
    let last = w
        .events()
        .await
        .into_iter()
        .rev()
        .find(|e| e.envelope.event_type == "agent.assigned")
        .unwrap();
    assert_eq!(last.envelope.data["agent"]["id"], ann.id.as_str());
    assert_eq!(
        w.count("SELECT 1 FROM queue_items WHERE state = 'waiting'")
            .await,
        0
    );
    assert_eq!(
        w.count("SELECT 1 FROM agents WHERE load > capacity").await,
        0
    );
}
