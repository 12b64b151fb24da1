//! The periodic-job framework: jobs fire at their scheduled moments (driven through a manual
//! clock), missed occurrences collapse into one run, and two schedulers never both run one
//! occurrence — neither under the lease nor when both believe they lead.

use std::time::Duration;

use scheduler::{ManualClock, periodic::run_due};
use shared::{
    queue::{Job, QueueName, keys},
    testkit::TestRedis,
};

use crate::{Counting, Runs, at, scheduler};

fn occurrences(runs: &Runs) -> Vec<String> {
    runs.lock()
        .unwrap()
        .iter()
        .map(|(_, at)| at.format("%H:%M:%S").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn periodic_jobs_fire_at_their_scheduled_moments_and_collapse_missed_ones() {
    let redis = TestRedis::new();
    let clock = ManualClock::new(at("2026-03-01T09:58:30Z"));
    let runs = Runs::default();
    let s = scheduler(&redis, &clock)
        .with_periodic(Counting::task("every-five", "*/5 * * * *", "a", &runs))
        .with_periodic(Counting::task("every-thirty-s", "@every 30s", "a", &runs));
    let check = async |now: &str, want: &[&str]| {
        clock.set(at(now));
        let before = runs.lock().unwrap().len();
        let report = s.tick().await.unwrap().expect("the only scheduler leads");
        assert_eq!(report.periodic.len(), want.len(), "at {now}");
        assert!(report.periodic.iter().all(|r| r.outcome.is_ok()));
        let ran = occurrences(&runs)[before..].to_vec();
        assert_eq!(ran, want, "at {now}");
    };
    // The first sight of a job only records a baseline, as cron would not run "the last one".
    check("2026-03-01T09:58:30Z", &[]).await;
    check("2026-03-01T09:58:59Z", &[]).await;
    check("2026-03-01T09:59:00Z", &["09:59:00"]).await;
    check("2026-03-01T09:59:29Z", &[]).await;
    check("2026-03-01T09:59:59Z", &["09:59:30"]).await;
    check("2026-03-01T10:00:00Z", &["10:00:00", "10:00:00"]).await;
    check("2026-03-01T10:00:00Z", &[]).await;
    check("2026-03-01T10:04:59Z", &["10:04:30"]).await;
    check("2026-03-01T10:05:00Z", &["10:05:00", "10:05:00"]).await;
    // Half an hour without a tick: one run each, for the latest occurrence.
    check("2026-03-01T10:31:10Z", &["10:30:00", "10:31:00"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_schedulers_never_both_run_a_periodic_job() {
    let redis = TestRedis::new();
    let clock = ManualClock::new(at("2026-03-01T00:00:30Z"));
    let runs = Runs::default();
    let a =
        scheduler(&redis, &clock).with_periodic(Counting::task("sweep", "* * * * *", "a", &runs));
    let b =
        scheduler(&redis, &clock).with_periodic(Counting::task("sweep", "* * * * *", "b", &runs));
    let (first_a, first_b) = tokio::join!(a.tick(), b.tick());
    let leader = if first_a.unwrap().is_some() { "a" } else { "b" };
    assert!(
        first_b.unwrap().is_some() != (leader == "a"),
        "exactly one leads"
    );

    for _ in 0..30 {
        clock.advance(Duration::from_secs(60));
        let (ra, rb) = tokio::join!(a.tick(), b.tick());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(
            ra.is_some() != rb.is_some(),
            "exactly one scheduler leads each tick"
        );
    }
    // The leader dies without releasing its lease, and the lease is gone (expired): the other
    // takes over at its next tick and carries on from the next occurrence.
    let mut conn = redis_conn().await;
    redis::cmd("DEL")
        .arg(keys::lease(&redis.prefix, "scheduler"))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let survivor = if leader == "a" { &b } else { &a };
    for _ in 0..10 {
        clock.advance(Duration::from_secs(60));
        assert!(survivor.tick().await.unwrap().is_some());
    }

    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 40, "one run per minute: {runs:?}");
    let mut seen: Vec<_> = runs.iter().map(|(_, at)| *at).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 40, "no occurrence ran twice");
    let by_leader = runs.iter().take(30).all(|(who, _)| who == leader);
    let by_survivor = runs.iter().skip(30).all(|(who, _)| who != leader);
    assert!(by_leader && by_survivor, "{runs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_occurrence_runs_once_even_when_two_schedulers_both_believe_they_lead() {
    let redis = TestRedis::new();
    let runs = Runs::default();
    let tasks_a = [Counting::task("sweep", "@every 10s", "a", &runs)];
    let tasks_b = [Counting::task("sweep", "@every 10s", "b", &runs)];
    let start = at("2026-03-01T00:00:05Z");
    run_due(&redis.queues, &tasks_a, start).await;
    for step in 1..=50 {
        let now = start + chrono::Duration::seconds(10 * step);
        tokio::join!(
            run_due(&redis.queues, &tasks_a, now),
            run_due(&redis.queues, &tasks_b, now)
        );
    }
    let runs = runs.lock().unwrap().clone();
    let mut occurrences: Vec<_> = runs.iter().map(|(_, at)| *at).collect();
    occurrences.sort();
    occurrences.dedup();
    assert_eq!(runs.len(), 50, "{runs:?}");
    assert_eq!(occurrences.len(), 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn delayed_jobs_are_promoted_when_the_injected_clock_reaches_their_due_time() {
    let redis = TestRedis::new();
    let clock = ManualClock::new(at("2026-03-01T12:00:00Z"));
    let s = scheduler(&redis, &clock);
    let queue = QueueName::new("deliveries").unwrap();
    let due = at("2026-03-01T12:01:30Z").timestamp_millis();
    let job = Job::new(queue.clone(), "noop", serde_json::json!({}));
    redis.queues.enqueue_at(&job, due).await.unwrap();

    clock.set(at("2026-03-01T12:01:29.999Z"));
    assert_eq!(s.tick().await.unwrap().unwrap().promoted, 0);
    assert_eq!(redis.queues.stats(&queue).await.unwrap().delayed, 1);
    clock.set(at("2026-03-01T12:01:30Z"));
    assert_eq!(s.tick().await.unwrap().unwrap().promoted, 1);
    let stats = redis.queues.stats(&queue).await.unwrap();
    assert_eq!((stats.delayed, stats.length), (0, 1));
}

pub async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(shared::testkit::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
