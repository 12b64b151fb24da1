//! Every illegal transition and bad input the pipeline can meet, with its error: refused, not
//! applied, and nothing recorded for it.

use serde_json::json;
use shared::{
    conversation::{
        ConversationError, IllegalTransition,
        cases::Closing,
        handoff::{self, Trigger},
        sessions,
    },
    jobs::JobError,
    queue::{Job, QueueName},
};

use crate::{World, only_session};

fn illegal(
    result: Result<impl std::fmt::Debug, ConversationError>,
    entity: &str,
    from: &str,
    to: &str,
) {
    match result {
        Err(ConversationError::Illegal(IllegalTransition {
            entity: e,
            from: f,
            to: t,
            ..
        })) => {
            assert_eq!((e, f, t), (entity, from, to));
        }
        other => panic!("expected {entity} {from} → {to} to be illegal, got {other:?}"),
    }
}

fn conflict(result: Result<impl std::fmt::Debug, ConversationError>, needle: &str) {
    match result {
        Err(ConversationError::Conflict(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected a conflict about {needle:?}, got {other:?}"),
    }
}

fn invalid(result: Result<impl std::fmt::Debug, ConversationError>, field: &str) {
    match result {
        Err(ConversationError::Invalid { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected {field} to be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cases_sessions_replies_and_surveys_refuse_illegal_moves() {
    let w = World::new().await;
    w.run(&w.waha("1@c.us", "m1", "hello")).await.unwrap();
    let session = only_session(&w).await;
    let agent = w.agent("Dana", 1).await;
    let other = w.agent("Otto", 1).await;

    // On the bot path there is nobody to reply as.
    conflict(
        w.reply(&w.tenant_id, &session, &agent.id, "hi").await,
        "bot path",
    );

    // Handoff without agents free: the case waits, unassigned; it cannot be closed.
    w.run(&w.waha("2@c.us", "m2", "agent")).await.unwrap(); // takes Dana (capacity 1)
    w.run(&w.waha("3@c.us", "m3", "agent")).await.unwrap(); // takes Otto
    w.run(&w.waha("1@c.us", "m4", "agent")).await.unwrap(); // waits
    let waiting = w.open_case(&session).await;
    assert_eq!(waiting.state, "created");
    illegal(
        w.close(&w.tenant_id, &waiting.id, "done", "positive").await,
        "case",
        "created",
        "closed",
    );
    conflict(
        w.reply(&w.tenant_id, &session, &agent.id, "hi").await,
        "not assigned",
    );

    // A live session cannot be handed off again.
    let mut tx = w.tx(&w.tenant_id).await;
    let live = sessions::lock(&mut tx, &session).await.unwrap();
    illegal(
        handoff::hand_off(&mut tx, &live, Trigger::Api, None).await,
        "session",
        "live",
        "live",
    );
    tx.rollback().await.unwrap();

    // Dana's case: bad input, then closed once, then never again.
    let danas = w
        .events()
        .await
        .into_iter()
        .find(|e| {
            e.envelope.event_type == "agent.assigned"
                && e.envelope.data["agent"]["id"] == agent.id.as_str()
        })
        .unwrap();
    let case_id = danas.envelope.data["case"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let danas_session = danas.envelope.data["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    invalid(
        w.reply(&w.tenant_id, &danas_session, &agent.id, "   ")
            .await,
        "text",
    );
    invalid(
        w.reply(&w.tenant_id, &danas_session, &agent.id, &"x".repeat(4097))
            .await,
        "text",
    );
    conflict(
        w.reply(&w.tenant_id, &danas_session, &other.id, "hi").await,
        "not assigned",
    );
    invalid(Closing::new("", "positive"), "disposition");
    invalid(Closing::new(&"d".repeat(101), "positive"), "disposition");
    invalid(Closing::new("done", "ecstatic"), "sentiment");
    let before = w.events().await.len();
    let closed = w
        .close(&w.tenant_id, &case_id, "done", "positive")
        .await
        .unwrap();
    assert!(w.events().await.len() > before);
    let after = w.events().await.len();
    illegal(
        w.close(&w.tenant_id, &case_id, "again", "negative").await,
        "case",
        "closed",
        "closed",
    );
    assert_eq!(
        w.events().await.len(),
        after,
        "a refused close records nothing"
    );
    // The closed case freed Dana, who took the waiting session at once.
    assert_eq!(
        w.open_case(&session).await.agent_id.as_deref(),
        Some(agent.id.as_str())
    );

    // The survey: bad scores refused, one answer, not two.
    invalid(
        w.answer_csat(&w.tenant_id, &closed.survey.id, 0).await,
        "score",
    );
    invalid(
        w.answer_csat(&w.tenant_id, &closed.survey.id, 6).await,
        "score",
    );
    w.answer_csat(&w.tenant_id, &closed.survey.id, 4)
        .await
        .unwrap();
    illegal(
        w.answer_csat(&w.tenant_id, &closed.survey.id, 5).await,
        "csat survey",
        "responded",
        "responded",
    );
    assert_eq!(
        w.count("SELECT 1 FROM csat_surveys WHERE score = 4").await,
        1
    );
}

fn status_job(w: &World, kind: &str, raw: serde_json::Value) -> Job {
    let payload = json!({
        "v": 1, "channel": "waha", "inbox_id": w.inbox_id, "tenant_id": w.tenant_id,
        "provider_message_id": "p", "received_at": "2026-11-23T10:00:00Z", "context": {}, "raw": raw,
    });
    Job::new(QueueName::new("whatsapp-messages").unwrap(), kind, payload).with_tenant(&w.tenant_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn status_callbacks_move_forward_ignore_stale_ones_and_refuse_illegal_ones() {
    let w = World::new().await;
    w.run(&w.waha("1@c.us", "m1", "hello")).await.unwrap();
    // The delivery adapter recorded the provider's id for the bot's reply.
    let mut conn = w.db.pool.get().await.unwrap();
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE messages SET provider_message_id = 'true_1@c.us_OUT' WHERE direction = 'outbound'"),
        &mut conn,
    )
    .await
    .unwrap();
    let ack = |level: i64| {
        status_job(
            &w,
            "waha.ack",
            json!({"event": "message.ack", "payload": {"id": "true_1@c.us_OUT", "ack": level}}),
        )
    };
    w.run(&ack(1)).await.unwrap(); // SERVER: nothing to do
    w.run(&ack(3)).await.unwrap(); // READ
    w.run(&ack(3)).await.unwrap(); // again: stale
    w.run(&ack(2)).await.unwrap(); // DEVICE after READ: stale
    let unknown = status_job(
        &w,
        "waha.ack",
        json!({"payload": {"id": "not-ours", "ack": 3}}),
    );
    w.run(&unknown).await.unwrap();
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE status = 'read'")
            .await,
        1
    );
    assert_eq!(
        w.count("SELECT 1 FROM event_logs WHERE type = 'message.read'")
            .await,
        1
    );
    assert_eq!(
        w.count("SELECT 1 FROM event_logs WHERE type = 'message.delivered'")
            .await,
        0
    );
    // A failure after read is stale (shared::channels::status): acknowledged, nothing applied.
    w.run(&ack(-1)).await.unwrap();
    assert_eq!(
        w.count("SELECT 1 FROM messages WHERE status = 'failed'")
            .await,
        0
    );
    // Malformed jobs are permanent failures that say what is wrong.
    let broken = status_job(&w, "waha.ack", json!({"payload": {"ack": 3}}));
    assert!(
        matches!(w.run(&broken).await, Err(JobError::Permanent(m)) if m.contains("payload.id"))
    );
    let mut bad = w.waha("1@c.us", "m9", "hi");
    bad.payload["raw"]["payload"]["from"] = json!(null);
    assert!(
        matches!(w.run(&bad).await, Err(JobError::Permanent(m)) if m.contains("invalid waha.message payload"))
    );
}
