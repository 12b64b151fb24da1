//! Retention pruning of `event_logs` at its scheduled moment: only events older than the
//! retention go, and the append-only trigger still refuses any other delete.

use diesel::sql_types::{Text, Timestamptz};
use diesel_async::RunQueryDsl;
use scheduler::{ManualClock, PeriodicTask, retention::PruneEventLogs};
use shared::testkit::{TestDb, TestRedis};

use crate::{at, schedule, scheduler};

async fn insert_event(db: &TestDb, id: &str, occurred_at: chrono::DateTime<chrono::Utc>) {
    let mut conn = db.pool.get().await.unwrap();
    diesel::sql_query(
        "INSERT INTO event_logs (id, tenant_id, type, version, source, aggregate_type, \
         aggregate_id, aggregate_version, correlation_id, causation_id, data, channels, \
         occurred_at) VALUES ($1, 'ten_1', 'session.created', '1', 'test', 'session', $1, 1, \
         'cor', 'cause', '{}', '{}', $2)",
    )
    .bind::<Text, _>(id)
    .bind::<Timestamptz, _>(occurred_at)
    .execute(&mut conn)
    .await
    .unwrap();
}

async fn remaining(db: &TestDb) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let mut conn = db.pool.get().await.unwrap();
    let rows: Vec<Row> = diesel::sql_query("SELECT id FROM event_logs ORDER BY id")
        .load(&mut conn)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn event_logs_older_than_the_retention_are_pruned_at_the_scheduled_time() {
    let (redis, db) = (TestRedis::new(), TestDb::new().await);
    let clock = ManualClock::new(at("2026-03-10T03:36:00Z"));
    insert_event(&db, "evt_a_old", at("2025-11-01T00:00:00Z")).await;
    // Exactly the cutoff of the 03:37 run with 90 days: kept (the cutoff is exclusive).
    insert_event(&db, "evt_b_cutoff", at("2025-12-10T03:37:00Z")).await;
    insert_event(&db, "evt_c_recent", at("2026-03-09T00:00:00Z")).await;

    // Append-only: a delete without the pruning flag is refused.
    {
        let mut conn = db.pool.get().await.unwrap();
        let refused = diesel::sql_query("DELETE FROM event_logs WHERE id = 'evt_c_recent'")
            .execute(&mut conn)
            .await;
        assert!(
            refused.is_err(),
            "the append-only trigger let a delete through"
        );
    }

    let s = scheduler(&redis, &clock).with_periodic(PeriodicTask::new(
        schedule("37 3 * * *"),
        PruneEventLogs {
            db: db.pool.clone(),
            retention: chrono::Duration::days(90),
        },
    ));
    assert!(
        s.tick().await.unwrap().unwrap().periodic.is_empty(),
        "baseline"
    );
    clock.set(at("2026-03-10T03:36:59Z"));
    assert!(s.tick().await.unwrap().unwrap().periodic.is_empty());
    assert_eq!(remaining(&db).await.len(), 3, "nothing pruned before 03:37");

    clock.set(at("2026-03-10T03:37:00Z"));
    let report = s.tick().await.unwrap().unwrap();
    assert_eq!(report.periodic.len(), 1);
    let summary = report.periodic[0].outcome.clone().unwrap();
    assert!(summary.starts_with("pruned 1 events"), "{summary}");
    assert_eq!(remaining(&db).await, ["evt_b_cutoff", "evt_c_recent"]);

    // The same occurrence does not run twice.
    assert!(s.tick().await.unwrap().unwrap().periodic.is_empty());
}

/// The batches walk `seq` up to the first event that is not old enough: more than one batch of
/// old events all go, and an old event appended after a newer one (writers' clocks differ)
/// waits for a later run rather than making the prune read the rest of the log.
#[tokio::test(flavor = "multi_thread")]
async fn pruning_goes_batch_by_batch_up_to_the_first_recent_event() {
    let db = TestDb::new().await;
    {
        let mut conn = db.pool.get().await.unwrap();
        diesel::sql_query(
            "INSERT INTO event_logs (id, tenant_id, type, version, source, aggregate_type, \
             aggregate_id, aggregate_version, correlation_id, causation_id, data, channels, \
             occurred_at) SELECT 'evt_old_' || lpad(g::text, 5, '0'), 'ten_1', \
             'session.created', '1', 'test', 'session', 'ses_' || g, 1, 'cor', 'cause', '{}', \
             '{}', $1 FROM generate_series(1, 5003) g",
        )
        .bind::<Timestamptz, _>(at("2025-11-01T00:00:00Z"))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    insert_event(&db, "evt_recent", at("2026-03-09T00:00:00Z")).await;
    insert_event(&db, "evt_skewed_old", at("2025-11-02T00:00:00Z")).await;
    let prune = PruneEventLogs {
        db: db.pool.clone(),
        retention: chrono::Duration::days(90),
    };

    let deleted = prune.prune(at("2026-01-01T00:00:00Z")).await.unwrap();
    assert_eq!(deleted, 5003);
    assert_eq!(remaining(&db).await, ["evt_recent", "evt_skewed_old"]);

    // Once the newer event is old too, the late one goes with it.
    let deleted = prune.prune(at("2026-04-01T00:00:00Z")).await.unwrap();
    assert_eq!(deleted, 2);
    assert!(remaining(&db).await.is_empty());
}
