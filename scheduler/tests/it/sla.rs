//! SLA warnings/breaches and CSAT expiry through the scheduler, time driven by the ManualClock:
//! a run just before each threshold emits nothing, a run at it emits the event once, and later
//! runs never emit it again.

use diesel::sql_types::{Text, Timestamptz};
use diesel_async::RunQueryDsl;
use scheduler::{
    ManualClock, PeriodicTask,
    sla::{ExpireCsat, SlaSweep},
};
use shared::{
    conversation::Conversations,
    events::Broadcaster,
    inboxes::{self, InboxKind, NewInbox},
    testkit::{TestDb, TestRedis},
};

use crate::{at, schedule, scheduler};

async fn exec(db: &TestDb, sql: &str, a: &str, t: chrono::DateTime<chrono::Utc>) {
    let mut conn = db.pool.get().await.unwrap();
    diesel::sql_query(sql)
        .bind::<Text, _>(a)
        .bind::<Timestamptz, _>(t)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A tenant, an inbox (`sla`: warning/breach/csat-expiry seconds), a contact, a session and a
/// case; returns (tenant, inbox, session, case).
async fn world(db: &TestDb, sla: &str) -> (String, String, String, String) {
    let tenant = inboxes::create_tenant(&db.pool, "Acme").await.unwrap();
    let mut new = NewInbox::new(&tenant, InboxKind::Widget, "w");
    new.widget_token = Some("widget-token".into());
    let inbox = inboxes::create_inbox(&db.pool, &new).await.unwrap();
    let t0 = at("2026-03-10T09:00:00Z");
    let sql = [
        format!(
            "INSERT INTO inbox_sla (inbox_id, warning_secs, breach_secs, csat_expiry_secs) VALUES ($1, {sla}) -- $2"
        ),
        format!(
            "INSERT INTO contacts (id, tenant_id, inbox_id, external_id, created_at) VALUES ('con_1', '{tenant}', $1, 'v1', $2)"
        ),
        format!(
            "INSERT INTO sessions (id, tenant_id, inbox_id, contact_id, state, correlation_id, created_at) VALUES ('ses_1', '{tenant}', $1, 'con_1', 'live', 'cor_1', $2)"
        ),
        format!(
            "INSERT INTO cases (id, tenant_id, inbox_id, session_id, contact_id, created_at) VALUES ('cas_1', '{tenant}', $1, 'ses_1', 'con_1', $2)"
        ),
    ];
    for s in sql {
        exec(db, &s, &inbox, t0).await;
    }
    (tenant, inbox, "ses_1".into(), "cas_1".into())
}

async fn events(db: &TestDb, event_type: &str) -> Vec<serde_json::Value> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        data: serde_json::Value,
    }
    let mut conn = db.pool.get().await.unwrap();
    let rows: Vec<Row> =
        diesel::sql_query("SELECT data FROM event_logs WHERE type = $1 ORDER BY seq")
            .bind::<Text, _>(event_type)
            .load(&mut conn)
            .await
            .unwrap();
    rows.into_iter().map(|r| r.data).collect()
}

fn conversations(redis: &TestRedis, db: &TestDb) -> Conversations {
    Conversations::new(
        db.pool.clone(),
        redis.queues.clone(),
        Broadcaster::from_env(redis.queues.clone()),
        "switchyard.scheduler",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sla_warning_and_breach_fire_once_at_their_thresholds() {
    let (redis, db) = (TestRedis::new(), TestDb::new().await);
    let (tenant, inbox, _, _) = world(&db, "300, 900, NULL").await;
    // Waiting for an agent since 10:00:00: warning due 10:05:00, breach 10:15:00.
    exec(
        &db,
        &format!("INSERT INTO queue_items (id, tenant_id, inbox_id, session_id, case_id, state, created_at) VALUES ('qi_1', '{tenant}', $1, 'ses_1', 'cas_1', 'waiting', $2)"),
        &inbox,
        at("2026-03-10T10:00:00Z"),
    )
    .await;
    let clock = ManualClock::new(at("2026-03-10T10:04:58Z"));
    let s = scheduler(&redis, &clock).with_periodic(PeriodicTask::new(
        schedule("@every 1s"),
        SlaSweep {
            conversations: conversations(&redis, &db),
        },
    ));
    s.tick().await.unwrap().unwrap(); // baseline
    let tick_at = async |t: &str| {
        clock.set(at(t));
        let report = s.tick().await.unwrap().unwrap();
        assert_eq!(report.periodic.len(), 1, "one run at {t}");
        report.periodic[0].outcome.clone().unwrap()
    };

    assert_eq!(
        tick_at("2026-03-10T10:04:59Z").await,
        "0 SLA warnings and 0 SLA breaches"
    );
    assert!(events(&db, "inbox.sla.warning").await.is_empty());

    assert_eq!(
        tick_at("2026-03-10T10:05:00Z").await,
        "1 SLA warnings and 0 SLA breaches"
    );
    let warnings = events(&db, "inbox.sla.warning").await;
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0]["queue_item_id"], "qi_1");
    assert_eq!(warnings[0]["inbox_id"], inbox.as_str());
    assert_eq!(warnings[0]["waited_secs"], 300);

    assert_eq!(
        tick_at("2026-03-10T10:05:01Z").await,
        "0 SLA warnings and 0 SLA breaches"
    );
    assert_eq!(
        tick_at("2026-03-10T10:14:59Z").await,
        "0 SLA warnings and 0 SLA breaches"
    );
    assert!(events(&db, "inbox.sla.breach").await.is_empty());
    assert_eq!(
        tick_at("2026-03-10T10:15:00Z").await,
        "0 SLA warnings and 1 SLA breaches"
    );
    assert_eq!(
        tick_at("2026-03-10T10:15:01Z").await,
        "0 SLA warnings and 0 SLA breaches"
    );
    assert_eq!(events(&db, "inbox.sla.warning").await.len(), 1);
    assert_eq!(events(&db, "inbox.sla.breach").await.len(), 1);

    // A second sweep of the same moment (another scheduler, a re-run) emits nothing.
    let again = SlaSweep {
        conversations: conversations(&redis, &db),
    };
    assert_eq!(
        again
            .sweep("breach", at("2026-03-10T10:20:00Z"))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sla_events_stop_once_an_agent_takes_the_item_and_need_thresholds() {
    let (redis, db) = (TestRedis::new(), TestDb::new().await);
    let (tenant, inbox, _, _) = world(&db, "300, 900, NULL").await;
    exec(
        &db,
        &format!("INSERT INTO queue_items (id, tenant_id, inbox_id, session_id, case_id, state, assigned_at, created_at) VALUES ('qi_1', '{tenant}', $1, 'ses_1', 'cas_1', 'assigned', now(), $2)"),
        &inbox,
        at("2026-03-10T10:00:00Z"),
    )
    .await;
    let sweep = SlaSweep {
        conversations: conversations(&redis, &db),
    };
    assert_eq!(
        sweep
            .sweep("warning", at("2026-03-10T11:00:00Z"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        sweep
            .sweep("breach", at("2026-03-10T11:00:00Z"))
            .await
            .unwrap(),
        0
    );
    assert!(events(&db, "inbox.sla.warning").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn csat_surveys_expire_once_at_their_inbox_expiry() {
    let (redis, db) = (TestRedis::new(), TestDb::new().await);
    let (tenant, _, _, _) = world(&db, "NULL, NULL, 3600").await;
    exec(
        &db,
        &format!("INSERT INTO csat_surveys (id, tenant_id, case_id, session_id, state, created_at) VALUES ('csat_1', '{tenant}', 'cas_1', $1, 'sent', $2)"),
        "ses_1",
        at("2026-03-10T10:00:00Z"),
    )
    .await;
    let clock = ManualClock::new(at("2026-03-10T10:59:58Z"));
    let s = scheduler(&redis, &clock).with_periodic(PeriodicTask::new(
        schedule("@every 1s"),
        ExpireCsat {
            conversations: conversations(&redis, &db),
            default_expiry: chrono::Duration::days(1),
        },
    ));
    s.tick().await.unwrap().unwrap(); // baseline
    let tick_at = async |t: &str| {
        clock.set(at(t));
        let report = s.tick().await.unwrap().unwrap();
        report.periodic[0].outcome.clone().unwrap()
    };
    assert_eq!(
        tick_at("2026-03-10T10:59:59Z").await,
        "0 CSAT surveys expired"
    );
    assert_eq!(
        tick_at("2026-03-10T11:00:00Z").await,
        "1 CSAT surveys expired"
    );
    assert_eq!(
        tick_at("2026-03-10T11:00:01Z").await,
        "0 CSAT surveys expired"
    );
    let expired = events(&db, "csat.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["csat"]["id"], "csat_1");

    #[derive(diesel::QueryableByName)]
    struct State {
        #[diesel(sql_type = Text)]
        state: String,
    }
    let mut conn = db.pool.get().await.unwrap();
    let state: State = diesel::sql_query("SELECT state FROM csat_surveys WHERE id = 'csat_1'")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(state.state, "expired");
}
