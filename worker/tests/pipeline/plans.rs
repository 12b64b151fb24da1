//! The lookups behind partial indexes stay index lookups when Postgres plans them generically,
//! as it does for a prepared statement after its fifth run on a connection. The checks run on a
//! pool whose connections force generic plans and refuse sequential scans where an index can
//! serve, and count the scans each transaction made (`pg_stat_xact_user_tables`): a predicate
//! written with a bind parameter (`state <> $1`) cannot use the index and scans the table.

use diesel::{
    QueryableByName,
    sql_types::{BigInt, Text},
};
use std::time::Duration;

use diesel_async::RunQueryDsl;
use shared::{
    bot::{Bots, RulesFile},
    conversation::{
        Conversations, Tx, assignment,
        cases::{self, Closing},
        contacts, csat, messages, queries, sessions,
        state::{MessageStatus, SessionState},
    },
    events::{Broadcaster, outbox},
};

use worker::handlers::Pipeline;

use crate::{World, only_session};

const CUSTOMER: &str = "4915200000001@c.us";

#[tokio::test(flavor = "multi_thread")]
async fn open_session_case_queue_item_and_survey_lookups_scan_no_table() {
    let w = World::new().await;
    // A live conversation waiting for an agent (there is none yet).
    w.run(&w.waha(CUSTOMER, "p-1", "hello")).await.unwrap();
    w.run(&w.waha(CUSTOMER, "p-2", "I want to talk to an agent"))
        .await
        .unwrap();
    let session_id = only_session(&w).await;
    let strict = generic_plans_only(&w);

    let mut tx = begin(&strict, &w).await;
    let session = sessions::get(&mut tx, &session_id).await.unwrap();
    let contact = contacts::get(&mut tx, &session.contact_id).await.unwrap();
    // A follow-up's conversation: contact and open session in one statement.
    let info = contacts::ContactInfo {
        external_id: CUSTOMER.into(),
        ..Default::default()
    };
    let sender = sessions::Sender {
        inbox_id: &w.inbox_id,
        contact: &info,
        correlation_id: "c",
    };
    let of_sender = sessions::of_senders(&mut tx, &[sender])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (of_sender.contact.id, of_sender.session.id, of_sender.opened),
        (contact.id.clone(), session_id.clone(), false)
    );
    let case = cases::open_for_session(&mut tx, &session_id)
        .await
        .unwrap()
        .expect("the handoff opened a case");
    assert!(
        assignment::assign_waiting(&mut tx)
            .await
            .unwrap()
            .is_empty()
    );
    no_scans(tx, "open session, open case, oldest waiting item").await;

    // The conversation function's other paths: a returning customer (their session closed) gets
    // a new session, a new customer a contact and a session.
    let mut tx = begin(&strict, &w).await;
    let session = sessions::lock(&mut tx, &session_id).await.unwrap();
    sessions::change_path(&mut tx, &session, SessionState::Closed, "plans")
        .await
        .unwrap();
    let newcomer = contacts::ContactInfo {
        external_id: "4915200000002@c.us".into(),
        ..Default::default()
    };
    let senders = [
        sender,
        sessions::Sender {
            contact: &newcomer,
            ..sender
        },
    ];
    let found = sessions::of_senders(&mut tx, &senders).await.unwrap();
    assert_eq!(found[0].contact.id, contact.id);
    assert_ne!(found[0].session.id, session_id);
    assert_eq!(found[1].contact.external_id, newcomer.external_id);
    assert!(found.iter().all(|of_sender| of_sender.opened));
    no_scans(tx, "a returning customer's new session, a new customer").await;

    let mut tx = begin(&strict, &w).await;
    let read = queries::session(tx.conn(), &w.tenant_id, &session_id, 10)
        .await
        .unwrap();
    assert_eq!(read["open_case"]["id"], case.id.as_str(), "{read}");
    no_scans(tx, "the API's read of a session").await;

    // An agent takes it; closing releases the queue item and sends the survey.
    let agent = w.agent("Dana", 1).await;
    let case = w.open_case(&session_id).await;
    assert_eq!(case.agent_id.as_deref(), Some(agent.id.as_str()));
    let mut tx = begin(&strict, &w).await;
    let closing = Closing::new("parcel_resent", "positive").unwrap();
    cases::close(&mut tx, &case.id, &closing).await.unwrap();
    let survey = csat::pending(&mut tx, &session_id)
        .await
        .unwrap()
        .expect("closing sent the survey");
    assert_eq!(survey.state, "sent");
    no_scans(tx, "closing a case, the pending survey").await;
}

/// A job's retry looks up what its first attempt left unsent by causation id (every redelivered
/// webhook does): through `event_logs_causation`, not by reading the event log, which only grows.
#[tokio::test(flavor = "multi_thread")]
async fn a_reruns_unsent_events_are_found_without_reading_the_event_log() {
    let w = World::new().await;
    for i in 0..10 {
        let customer = format!("49152000001{i:02}@c.us");
        w.run(&w.waha(&customer, &format!("r-{i}"), "hello"))
            .await
            .unwrap();
    }
    let logged = w.count("SELECT 1 FROM event_logs").await;
    assert!(logged >= 20, "{logged} events logged");
    let rerun = w.waha(CUSTOMER, "r-rerun", "hello");
    let strict = generic_plans_only(&w);

    let mut tx = begin(&strict, &w).await;
    let unsent = outbox::unsent_event_ids(tx.conn(), &rerun.id.to_string())
        .await
        .unwrap();
    assert!(unsent.is_empty(), "{unsent:?}");
    let read = rows_read(&mut tx, "event_logs").await;
    assert!(
        read < 3,
        "the look-up read {read} of {logged} logged events"
    );
    no_scans(tx, "the unsent events of one origin").await;
}

/// A message's statements are kept prepared on their connection, so Postgres parses and plans
/// each once per connection, not once per message. diesel never keeps a `diesel::sql_query` or a
/// `diesel::dsl::sql` fragment prepared: the event append and the outbox cleanup were such calls,
/// and the open-session look-up held such a predicate (now the `conversation_of_sender` call) —
/// ~300 µs of parsing and planning per message under pipeline-bench. On a pool of one
/// connection, after a new conversation and a follow-up, that connection's prepared statements
/// must include all three.
#[tokio::test(flavor = "multi_thread")]
async fn a_messages_statements_are_kept_prepared() {
    let w = World::new().await;
    let pool = shared::db::pool(&w.db.url, 1).unwrap();
    let bots = Bots::new(pool.clone(), RulesFile::default(), Duration::ZERO);
    let broadcaster = Broadcaster::new(w.redis.queues.clone(), &w.broadcast_prefix);
    let pipeline = Pipeline::new(pool.clone(), w.redis.queues.clone(), broadcaster, bots);
    let registry = worker::registry::with_pipeline(pool.clone(), pipeline.clone());
    for (id, text) in [("k-1", "hello"), ("k-2", "hello again")] {
        registry.dispatch(w.waha(CUSTOMER, id, text)).await.unwrap();
    }
    // The outbox cleanup runs shortly after; now, so that it ran on this connection too.
    pipeline
        .conversations
        .outbox
        .flush_forgotten()
        .await
        .unwrap();
    assert_eq!(
        w.count("SELECT 1 FROM messages").await,
        4,
        "two in, two bot replies"
    );
    // A delivery's UPDATE, on the same connection (diesel never keeps an UPDATE prepared).
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let reply: Id = diesel::sql_query(
        "SELECT id FROM messages WHERE direction = 'outbound' ORDER BY created_at LIMIT 1",
    )
    .get_result(&mut *w.db.pool.get().await.unwrap())
    .await
    .unwrap();
    let conversations = &pipeline.conversations;
    let mut tx = conversations.begin(&w.tenant_id, "plans").await.unwrap();
    let recorded = messages::record_sent(&mut tx, &reply.id, "wamid-out-1", MessageStatus::Sent)
        .await
        .unwrap();
    assert!(recorded);
    tx.rollback().await.unwrap();

    #[derive(QueryableByName)]
    struct Statement {
        #[diesel(sql_type = Text)]
        statement: String,
    }
    let mut conn = pool.get().await.unwrap();
    let prepared: Vec<Statement> =
        diesel::sql_query("SELECT statement FROM pg_prepared_statements")
            .load(&mut *conn)
            .await
            .unwrap();
    for expected in [
        "FROM transaction_effects_append_steps(",
        "SELECT outbox_forget_async(",
        "FROM conversation_of_sender(",
        r#"UPDATE "messages" SET "provider_message_id""#,
        r#"UPDATE "messages" SET "status""#,
    ] {
        assert!(
            prepared.iter().any(|p| p.statement.contains(expected)),
            "no prepared statement holds {expected:?}"
        );
    }
}

/// Rows of `table` this transaction read, by sequential and index scans.
async fn rows_read(tx: &mut Tx, table: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Read {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let read: Read = diesel::sql_query(
        "SELECT COALESCE(SUM(seq_tup_read + COALESCE(idx_tup_fetch, 0)), 0)::bigint AS n \
         FROM pg_stat_xact_user_tables WHERE relname = $1",
    )
    .bind::<Text, _>(table)
    .get_result(tx.conn())
    .await
    .unwrap();
    read.n
}

/// A pool on the test's database whose plans are all generic, and which scans a table only
/// where no index can serve.
fn generic_plans_only(w: &World) -> Conversations {
    let options = "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off";
    let url = format!("{}?options={}", w.db.url, options.replace(' ', "%20"));
    let pool = shared::db::pool(&url, 2).unwrap();
    let broadcaster = Broadcaster::new(w.redis.queues.clone(), &w.broadcast_prefix);
    Conversations::new(pool, w.redis.queues.clone(), broadcaster, "test.plans")
}

async fn begin(c: &Conversations, w: &World) -> Tx {
    let mut tx = c.begin(&w.tenant_id, "plans").await.unwrap();
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        plan_cache_mode: String,
    }
    let mode: Setting = diesel::sql_query("SHOW plan_cache_mode")
        .get_result(tx.conn())
        .await
        .unwrap();
    assert_eq!(mode.plan_cache_mode, "force_generic_plan");
    tx
}

/// Asserts the transaction scanned no table, then rolls it back.
async fn no_scans(mut tx: Tx, what: &str) {
    #[derive(QueryableByName)]
    struct Scanned {
        #[diesel(sql_type = Text)]
        relname: String,
        #[diesel(sql_type = BigInt)]
        seq_scan: i64,
    }
    let scanned: Vec<Scanned> = diesel::sql_query(
        "SELECT relname::text AS relname, seq_scan FROM pg_stat_xact_user_tables \
         WHERE seq_scan > 0 ORDER BY relname",
    )
    .load(tx.conn())
    .await
    .unwrap();
    let scanned: Vec<String> = scanned
        .iter()
        .map(|s| format!("{} ({} scans)", s.relname, s.seq_scan))
        .collect();
    assert!(scanned.is_empty(), "{what} scanned {scanned:?}");
    tx.rollback().await.unwrap();
}
