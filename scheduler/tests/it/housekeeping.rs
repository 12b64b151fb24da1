//! The periodic jobs that exist today, run through the scheduler at their scheduled moments:
//! failed-job retention, and stream trimming that never drops an unacked entry.

use scheduler::{
    ManualClock, PeriodicTask,
    housekeeping::{PruneFailedJobs, TrimStreams},
};
use serde_json::json;
use shared::{
    queue::{
        Job, QueueName,
        failed::{FailedJob, FailedJobs},
        keys::GROUP,
    },
    testkit::{TestDb, TestRedis},
};

use crate::{at, periodic::redis_conn, schedule, scheduler};

#[tokio::test(flavor = "multi_thread")]
async fn failed_jobs_older_than_the_retention_are_pruned_at_the_scheduled_time() {
    let (redis, db) = (TestRedis::new(), TestDb::new().await);
    let failed = FailedJobs::new(db.pool.clone());
    let clock = ManualClock::new(at("2026-03-10T02:59:00Z"));
    let day = chrono::Duration::days(1);
    let mut ids = Vec::new();
    for (name, failed_at) in [
        ("20 days", clock_now(&clock) - day * 20),
        ("15 days", clock_now(&clock) - day * 15),
        // Exactly the cutoff of the 03:00 run: kept, the cutoff is exclusive.
        ("at the cutoff", at("2026-02-24T03:00:00Z")),
        ("1 day", clock_now(&clock) - day),
    ] {
        let job = Job::new(
            QueueName::new("email").unwrap(),
            "record",
            json!({ "age": name }),
        );
        let mut row = FailedJob::from_job(&job, "boom");
        row.failed_at = failed_at;
        failed.record(&row).await.unwrap();
        ids.push(row.id);
    }
    let s = scheduler(&redis, &clock).with_periodic(PeriodicTask::new(
        schedule("0 3 * * *"),
        PruneFailedJobs {
            failed: failed.clone(),
            retention: day * 14,
        },
    ));
    assert!(
        s.tick().await.unwrap().unwrap().periodic.is_empty(),
        "baseline only"
    );
    clock.set(at("2026-03-10T02:59:59Z"));
    assert!(s.tick().await.unwrap().unwrap().periodic.is_empty());
    assert_eq!(
        failed.count(None).await.unwrap(),
        4,
        "nothing pruned before 03:00"
    );

    clock.set(at("2026-03-10T03:00:00Z"));
    let report = s.tick().await.unwrap().unwrap();
    assert_eq!(report.periodic.len(), 1);
    let summary = report.periodic[0].outcome.clone().unwrap();
    assert!(summary.starts_with("pruned 2 failed jobs"), "{summary}");
    for (id, kept) in ids.iter().zip([false, false, true, true]) {
        assert_eq!(failed.find(id).await.unwrap().is_some(), kept, "{id}");
    }
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<chrono::Utc> {
    scheduler::Clock::now(clock)
}

/// XADDs `n` entries; returns their ids.
async fn add(conn: &mut redis::aio::MultiplexedConnection, stream: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id: String = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("job")
            .arg(format!("{{\"n\":{i}}}"))
            .query_async(conn)
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

async fn ids_in(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> Vec<String> {
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    entries.into_iter().map(|(id, _)| id).collect()
}

async fn xack(conn: &mut redis::aio::MultiplexedConnection, stream: &str, ids: &[&String]) {
    redis::cmd("XACK")
        .arg(stream)
        .arg(GROUP)
        .arg(ids)
        .query_async::<i64>(conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn trimming_removes_acked_entries_and_never_an_unacked_one() {
    let redis = TestRedis::new();
    let mut conn = redis_conn().await;
    let queue = QueueName::new("facebook").unwrap();
    let stream = redis.queues.keys(&queue).stream;
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let e = add(&mut conn, &stream, 10).await;
    // A consumer reads six; four of them are acked without being deleted, two stay in flight
    // (e[2] and e[5]); four are never read.
    redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("c1")
        .arg("COUNT")
        .arg(6)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async::<redis::Value>(&mut conn)
        .await
        .unwrap();
    xack(&mut conn, &stream, &[&e[0], &e[1], &e[3], &e[4]]).await;

    // Through the scheduler, at the job's moment.
    let clock = ManualClock::new(at("2026-03-01T00:04:00Z"));
    let s = scheduler(&redis, &clock).with_periodic(PeriodicTask::new(
        schedule("*/5 * * * *"),
        TrimStreams {
            queues: redis.queues.clone(),
            names: vec![queue.clone()],
        },
    ));
    s.tick().await.unwrap();
    clock.set(at("2026-03-01T00:05:00Z"));
    let report = s.tick().await.unwrap().unwrap();
    assert_eq!(
        report.periodic[0].outcome,
        Ok("trimmed 2 acked stream entries over 1 queues".into())
    );
    // Only the acked entries below the oldest in-flight one can go.
    assert_eq!(ids_in(&mut conn, &stream).await, e[2..].to_vec());

    // Once the in-flight ones are acked, everything read is gone and the unread entries stay.
    xack(&mut conn, &stream, &[&e[2], &e[5]]).await;
    let trimmed = redis.queues.trim_acked(&queue).await.unwrap();
    assert_eq!(trimmed.entries, 4);
    assert_eq!(ids_in(&mut conn, &stream).await, e[6..].to_vec());
    let unread: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("c2")
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let delivered: Vec<String> = unread.keys[0].ids.iter().map(|i| i.id.clone()).collect();
    assert_eq!(
        delivered,
        e[6..].to_vec(),
        "unread entries are still delivered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_without_a_group_or_with_a_lagging_group_are_not_trimmed() {
    let redis = TestRedis::new();
    let mut conn = redis_conn().await;
    let lonely = QueueName::new("email").unwrap();
    let stream = redis.queues.keys(&lonely).stream;
    add(&mut conn, &stream, 3).await;
    let trimmed = redis.queues.trim_acked(&lonely).await.unwrap();
    assert_eq!((trimmed.entries, trimmed.min_id), (0, None));
    assert_eq!(ids_in(&mut conn, &stream).await.len(), 3);

    // Two groups: `workers` has read and acked everything, a second group has read nothing.
    let shared = QueueName::new("widget").unwrap();
    let stream = redis.queues.keys(&shared).stream;
    let e = add(&mut conn, &stream, 4).await;
    for group in [GROUP, "audit"] {
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg(group)
            .arg("0")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("c1")
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async::<redis::Value>(&mut conn)
        .await
        .unwrap();
    xack(&mut conn, &stream, &e.iter().collect::<Vec<_>>()).await;
    assert_eq!(redis.queues.trim_acked(&shared).await.unwrap().entries, 0);
    assert_eq!(ids_in(&mut conn, &stream).await, e);
}
