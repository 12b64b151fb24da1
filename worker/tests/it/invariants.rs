//! One test per queue invariant of DESIGN.md §3 (1–7), each failing without the mechanism it
//! names.

use std::time::Duration;

use serde_json::json;
use shared::{
    jobs::{JobError, JobRegistry},
    queue::{
        Job, Queues,
        consume::{Settled, StreamConsumer},
        enqueue::Enqueued,
    },
};

use crate::{Gate, Harness, builtin, eventually, job, q};

/// 1. Enqueue returns only after Redis accepted the job, and fails loudly when Redis is gone,
/// so ingress can answer 503 instead of acknowledging a webhook it did not store.
#[tokio::test(flavor = "multi_thread")]
async fn enqueue_returns_after_the_entry_exists_and_errors_when_redis_is_unreachable() {
    let h = Harness::new().await;
    let sent = job("facebook", "noop");
    let entry_id = h.queues().enqueue(&sent).await.unwrap();
    let mut conn = h.redis().await;
    let stored: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&h.queues().keys(&q("facebook")).stream)
        .arg(&entry_id)
        .arg(&entry_id)
        .query_async(&mut conn)
        .await
        .unwrap();
    let body: Job = serde_json::from_str(&stored[0].1[0].1).unwrap();
    assert_eq!(body, sent);

    let dead = Queues::new("redis://127.0.0.1:1", "dead").unwrap();
    assert!(dead.enqueue(&sent).await.is_err());
    assert!(
        dead.enqueue_batch(std::slice::from_ref(&sent))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn batched_enqueue_pipelines_jobs_to_their_own_queues() {
    let h = Harness::new().await;
    let jobs: Vec<Job> = (0..250)
        .map(|i| job(if i % 2 == 0 { "facebook" } else { "email" }, "noop"))
        .collect();
    let ids = h.queues().enqueue_batch(&jobs).await.unwrap();
    assert_eq!(ids.len(), 250);
    assert_eq!(h.xlen("facebook").await, 125);
    assert_eq!(h.xlen("email").await, 125);
}

/// 2. Ack after effect: while a handler runs, its entry is pending and still in the stream;
/// only after the handler's effect is committed is the entry acked (and deleted).
#[tokio::test(flavor = "multi_thread")]
async fn a_job_is_acked_only_after_its_handler_committed() {
    let mut h = Harness::new().await;
    let gate = Gate::new();
    let mut registry = builtin(&h);
    let g = gate.clone();
    let db = h.db.pool.clone();
    registry.register("gated", move |job: Job| {
        let (g, db) = (g.clone(), db.clone());
        async move {
            g.pass().await;
            record_receipt(&db, &job).await
        }
    });
    h.queues().enqueue(&job("facebook", "gated")).await.unwrap();
    h.start("facebook", registry, Harness::options("facebook"));
    gate.wait_entered(1).await;
    assert_eq!(h.pending("facebook").await, 1, "in flight means pending");
    assert_eq!(h.xlen("facebook").await, 1);
    assert_eq!(h.receipts().await, 0);
    gate.open();
    eventually("the job is acked", || async {
        h.pending("facebook").await == 0
    })
    .await;
    assert_eq!(
        h.receipts().await,
        1,
        "the effect was committed before the ack"
    );
    assert_eq!(h.xlen("facebook").await, 0);
    h.stop_all().await;
}

async fn record_receipt(db: &shared::db::DbPool, job: &Job) -> Result<(), JobError> {
    use diesel_async::RunQueryDsl;
    let mut conn = db.get().await.map_err(JobError::transient)?;
    diesel::sql_query("INSERT INTO job_receipts (job_id, queue, attempt) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind::<diesel::sql_types::Text, _>(job.id.to_string())
        .bind::<diesel::sql_types::Text, _>(job.queue.to_string())
        .bind::<diesel::sql_types::Integer, _>(job.attempt as i32)
        .execute(&mut conn)
        .await
        .map_err(JobError::transient)?;
    Ok(())
}

/// 3. One place at a time: a worker whose entry was reclaimed while it ran cannot also schedule
/// a retry of it (the move checks ownership atomically), so the job exists once.
#[tokio::test(flavor = "multi_thread")]
async fn a_reclaimed_entry_cannot_also_be_retried_by_its_old_owner() {
    let h = Harness::new().await;
    let queue = q("facebook");
    let consumer = StreamConsumer::new(h.queues(), queue.clone(), "slow-consumer");
    consumer.ensure_group().await.unwrap();
    h.queues().enqueue(&job("facebook", "noop")).await.unwrap();
    let mut conn = consumer
        .reader_connection(Duration::from_millis(100))
        .await
        .unwrap();
    let read = consumer
        .read(&mut conn, 10, Duration::from_millis(100))
        .await
        .unwrap();
    let delivery = &read[0];
    let reclaimed = h
        .queues()
        .reclaim_abandoned(&queue, Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(reclaimed, 1);
    let job = delivery.body.clone().unwrap();
    let moved = consumer
        .retry_later(&delivery.entry_id, &job.next_attempt("boom"), 0)
        .await
        .unwrap();
    assert!(!moved, "the old owner no longer owns the entry");
    assert!(h.delayed("facebook").await.is_empty());
    assert_eq!(
        h.xlen("facebook").await,
        1,
        "exactly one copy, back in the stream"
    );
    assert_eq!(
        consumer
            .settle(std::slice::from_ref(&delivery.entry_id), Settled::Processed)
            .await
            .unwrap(),
        0
    );
}

/// 3. A move to failed jobs writes the row first: with Postgres unreachable the job is not
/// settled as failed but waits in `delayed` (one place, its attempt unchanged), and once a
/// healthy worker runs it again, it lands in failed_jobs.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_is_not_acked_until_its_failed_jobs_row_is_written() {
    let mut h = Harness::new().await;
    let broken_db = shared::db::pool("postgres://postgres@127.0.0.1:1/nowhere", 1).unwrap();
    let mut options = Harness::options("facebook");
    options.policy.timeout = Duration::from_millis(500);
    // The broken worker never promotes it back itself: the job stays put to be looked at.
    options.maintenance_every = Duration::from_secs(3600);
    let stop_broken = {
        let consumer = StreamConsumer::new(h.queues(), q("facebook"), "db-less");
        let failed = shared::queue::failed::FailedJobs::new(broken_db);
        let stop = h.stop.child_token();
        let mut registry = JobRegistry::new();
        registry.register("doomed", |_job: Job| async {
            Err(JobError::permanent("invalid payload"))
        });
        tokio::spawn(shared::queue::backend::run_worker(
            consumer,
            options.clone(),
            failed,
            registry,
            stop.clone(),
        ));
        stop
    };
    let doomed = job("facebook", "doomed");
    h.queues().enqueue(&doomed).await.unwrap();
    eventually("the attempt ran and could not be recorded", || async {
        h.queues().stats(&q("facebook")).await.unwrap().lag == Some(0)
    })
    .await;
    eventually("the job waits in delayed", || async {
        h.queues().stats(&q("facebook")).await.unwrap().delayed == 1
    })
    .await;
    let stats = h.queues().stats(&q("facebook")).await.unwrap();
    assert_eq!(
        (stats.length, stats.pending, stats.delayed, stats.failed),
        (0, 0, 1, 0),
        "in one place, and not counted as failed without its failed_jobs row"
    );
    assert!(
        h.failed_jobs()
            .find(&doomed.id.to_string())
            .await
            .unwrap()
            .is_none()
    );
    stop_broken.cancel();

    let mut registry = JobRegistry::new();
    registry.register("doomed", |_job: Job| async {
        Err(JobError::permanent("invalid payload"))
    });
    options.maintenance_every = Duration::from_millis(100);
    h.start("facebook", registry, options);
    let failed = h.failed_jobs();
    eventually("the job reaches failed_jobs", || async {
        failed.find(&doomed.id.to_string()).await.unwrap().is_some()
    })
    .await;
    let row = failed.find(&doomed.id.to_string()).await.unwrap().unwrap();
    assert_eq!(row.attempts, 1, "it waited with its attempt unchanged");
    eventually("and is acked", || async {
        h.pending("facebook").await == 0 && h.xlen("facebook").await == 0
    })
    .await;
    h.stop_all().await;
}

/// 3, continued. A job carrying U+0000 (which Postgres stores in no text or JSONB; ingress
/// refuses it, a job may come from elsewhere) still reaches failed_jobs, the character written
/// as U+FFFD, and is acked: a failure that could never be recorded would run its job forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_carrying_a_nul_character_is_still_recorded() {
    let mut h = Harness::new().await;
    let mut registry = JobRegistry::new();
    registry.register("doomed", |_job: Job| async {
        Err(JobError::permanent("invalid payload \u{0}"))
    });
    h.start("facebook", registry, Harness::options("facebook"));
    let doomed = Job::new(
        q("facebook"),
        "doomed",
        serde_json::json!({"text": "a\u{0}b"}),
    );
    h.queues().enqueue(&doomed).await.unwrap();
    let failed = h.failed_jobs();
    eventually("the job reaches failed_jobs", || async {
        failed.find(&doomed.id.to_string()).await.unwrap().is_some()
    })
    .await;
    let row = failed.find(&doomed.id.to_string()).await.unwrap().unwrap();
    assert_eq!(row.payload["payload"]["text"], "a\u{FFFD}b");
    assert_eq!(row.error, "invalid payload \u{FFFD}");
    eventually("and is acked", || async {
        h.pending("facebook").await == 0 && h.xlen("facebook").await == 0
    })
    .await;
    h.stop_all().await;
}

/// 4. Crash recovery: entries of a consumer that stopped heartbeating are reclaimed and run by
/// another; a live consumer's heartbeat keeps its long job from being stolen.
#[tokio::test(flavor = "multi_thread")]
async fn abandoned_entries_are_reclaimed_but_heartbeated_ones_are_not() {
    let h = Harness::new().await;
    let queue = q("facebook");
    let alive = StreamConsumer::new(h.queues(), queue.clone(), "alive");
    alive.ensure_group().await.unwrap();
    h.queues()
        .enqueue_batch(&[job("facebook", "noop"), job("facebook", "noop")])
        .await
        .unwrap();
    let mut conn = alive
        .reader_connection(Duration::from_millis(100))
        .await
        .unwrap();
    let read = alive
        .read(&mut conn, 2, Duration::from_millis(100))
        .await
        .unwrap();
    let (kept, abandoned) = (&read[0].entry_id, &read[1].entry_id);

    let lease = Duration::from_millis(400);
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        alive.heartbeat(std::slice::from_ref(kept)).await.unwrap();
    }
    assert_eq!(
        h.queues()
            .reclaim_abandoned(&queue, lease, 10)
            .await
            .unwrap(),
        1,
        "only the silent entry"
    );
    assert_eq!(
        alive
            .settle(std::slice::from_ref(kept), Settled::Processed)
            .await
            .unwrap(),
        1,
        "still ours"
    );
    assert_eq!(
        alive
            .settle(std::slice::from_ref(abandoned), Settled::Processed)
            .await
            .unwrap(),
        0,
        "taken away"
    );

    let again = alive
        .read(&mut conn, 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].reclaims, 1, "the reclaim is counted");
}

/// 4. A message that keeps killing its workers is a poison message: after max_attempts
/// reclaims it goes to failed jobs without running again.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_looping_message_goes_to_failed_jobs() {
    let mut h = Harness::new().await;
    let queue = q("facebook");
    let poison = job("facebook", "record").with_max_attempts(2);
    h.queues().enqueue(&poison).await.unwrap();
    let dying = StreamConsumer::new(h.queues(), queue.clone(), "dying");
    dying.ensure_group().await.unwrap();
    let mut conn = dying
        .reader_connection(Duration::from_millis(100))
        .await
        .unwrap();
    for _ in 0..2 {
        // Read it and "die": never settle, let the lease lapse, reclaim.
        assert_eq!(
            dying
                .read(&mut conn, 1, Duration::from_millis(100))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            h.queues()
                .reclaim_abandoned(&queue, Duration::ZERO, 10)
                .await
                .unwrap(),
            1
        );
    }
    h.start("facebook", builtin(&h), Harness::options("facebook"));
    let failed = h.failed_jobs();
    eventually("poison lands in failed jobs", || async {
        failed.find(&poison.id.to_string()).await.unwrap().is_some()
    })
    .await;
    let row = failed.find(&poison.id.to_string()).await.unwrap().unwrap();
    assert!(row.error.contains("poison"), "{}", row.error);
    assert_eq!(
        h.receipts().await,
        0,
        "the poison message did not run again"
    );
    eventually("acked", || async { h.xlen("facebook").await == 0 }).await;
    h.stop_all().await;
}

/// 5. Effectively once: enqueue-unless-duplicate lets exactly one of many concurrent
/// redeliveries through, and a redelivered job id has its effect once.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_redeliveries_enqueue_once_and_take_effect_once() {
    let mut h = Harness::new().await;
    let attempts = (0..25).map(|_| {
        let queues = h.queues().clone();
        tokio::spawn(async move {
            queues
                .enqueue_unless_duplicate(
                    &job("whatsapp-messages", "record"),
                    "inbox-1:wamid.ABC",
                    Duration::from_secs(60),
                )
                .await
                .unwrap()
        })
    });
    let outcomes = futures::future::join_all(attempts).await;
    let new = outcomes
        .iter()
        .filter(|o| matches!(o.as_ref().unwrap(), Enqueued::New { .. }))
        .count();
    assert_eq!(new, 1);
    assert_eq!(h.xlen("whatsapp-messages").await, 1);

    let same = job("whatsapp-messages", "record");
    h.queues()
        .enqueue_batch(&[same.clone(), same.clone()])
        .await
        .unwrap();
    h.start(
        "whatsapp-messages",
        builtin(&h),
        Harness::options("whatsapp-messages"),
    );
    eventually("all three settled", || async {
        h.xlen("whatsapp-messages").await == 0
    })
    .await;
    assert_eq!(h.receipts().await, 2, "one per distinct job id");
    h.stop_all().await;
}

/// 6. Graceful shutdown: jobs in flight when the stop comes finish and are acked.
#[tokio::test(flavor = "multi_thread")]
async fn stopping_finishes_and_acks_in_flight_jobs() {
    let mut h = Harness::new().await;
    let slow: Vec<Job> = (0..5)
        .map(|_| Job::new(q("email"), "record", json!({"sleep_ms": 400})))
        .collect();
    h.queues().enqueue_batch(&slow).await.unwrap();
    h.start("email", builtin(&h), Harness::options("email"));
    eventually("all five in flight", || async {
        h.pending("email").await == 5
    })
    .await;
    h.stop_all().await;
    assert_eq!(h.receipts().await, 5);
    assert_eq!(h.pending("email").await, 0);
    assert_eq!(h.xlen("email").await, 0);
}

/// 7. Bounded memory: acked entries are deleted, not left in the stream.
#[tokio::test(flavor = "multi_thread")]
async fn processed_entries_leave_the_stream() {
    let mut h = Harness::new().await;
    let jobs: Vec<Job> = (0..500).map(|_| job("widget", "noop")).collect();
    h.queues().enqueue_batch(&jobs).await.unwrap();
    h.start("widget", builtin(&h), Harness::options("widget"));
    eventually("drained", || async {
        h.queues().stats(&q("widget")).await.unwrap().processed == 500
    })
    .await;
    assert_eq!(
        h.xlen("widget").await,
        0,
        "XACK alone would leave 500 entries"
    );
    h.stop_all().await;
}

/// Bad input: an envelope that does not decode goes to failed jobs with the reason, and the
/// worker goes on with the next job.
#[tokio::test(flavor = "multi_thread")]
async fn an_undecodable_envelope_is_failed_with_a_reason_and_work_goes_on() {
    let mut h = Harness::new().await;
    let mut conn = h.redis().await;
    let stream = h.queues().keys(&q("facebook")).stream;
    for raw in ["not json at all", r#"{"id":"x"}"#] {
        redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("job")
            .arg(raw)
            .query_async::<String>(&mut conn)
            .await
            .unwrap();
    }
    redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("other")
        .arg("field")
        .query_async::<String>(&mut conn)
        .await
        .unwrap();
    h.queues()
        .enqueue(&job("facebook", "record"))
        .await
        .unwrap();
    h.start("facebook", builtin(&h), Harness::options("facebook"));
    eventually("good job done", || async { h.receipts().await == 1 }).await;
    eventually("all settled", || async { h.xlen("facebook").await == 0 }).await;
    let rows = h.failed_jobs().list(Some("facebook"), 10).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| !r.error.is_empty()));
    assert!(rows.iter().any(|r| r.error.contains("does not decode")));
    assert!(rows.iter().any(|r| r.error.contains("no `job` field")));
    h.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_job_kind_fails_at_once_with_a_clear_error() {
    let mut h = Harness::new().await;
    let stray = job("facebook", "no.such.kind");
    h.queues().enqueue(&stray).await.unwrap();
    h.start("facebook", builtin(&h), Harness::options("facebook"));
    let failed = h.failed_jobs();
    eventually("failed", || async {
        failed.find(&stray.id.to_string()).await.unwrap().is_some()
    })
    .await;
    let row = failed.find(&stray.id.to_string()).await.unwrap().unwrap();
    assert_eq!(row.attempts, 1, "permanent: no retries");
    assert!(row.error.contains("no handler registered"), "{}", row.error);
    h.stop_all().await;
}

/// The group starts at the beginning of the stream, so jobs enqueued before any worker existed
/// are not skipped, and creating it twice is harmless.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_enqueued_before_the_first_worker_are_processed() {
    let mut h = Harness::new().await;
    h.queues()
        .enqueue(&job("deliveries", "record"))
        .await
        .unwrap();
    let consumer = StreamConsumer::new(h.queues(), q("deliveries"), "c");
    consumer.ensure_group().await.unwrap();
    consumer.ensure_group().await.unwrap();
    h.start("deliveries", builtin(&h), Harness::options("deliveries"));
    eventually("processed", || async { h.receipts().await == 1 }).await;
    h.stop_all().await;
}

/// Consumers left behind by restarts are pruned, but never one that still holds pending entries
/// (XGROUP DELCONSUMER would lose them).
#[tokio::test(flavor = "multi_thread")]
async fn idle_consumers_are_pruned_only_when_they_hold_nothing() {
    let h = Harness::new().await;
    let queue = q("facebook");
    h.queues()
        .enqueue_batch(&[job("facebook", "noop"), job("facebook", "noop")])
        .await
        .unwrap();
    let holder = StreamConsumer::new(h.queues(), queue.clone(), "holder");
    let idle = StreamConsumer::new(h.queues(), queue.clone(), "idle");
    holder.ensure_group().await.unwrap();
    let mut conn = holder
        .reader_connection(Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(
        holder
            .read(&mut conn, 1, Duration::from_millis(50))
            .await
            .unwrap()
            .len(),
        1
    );
    // Redis 7.0 creates a consumer on its first delivery: give `idle` one and let it finish.
    let done = idle
        .read(&mut conn, 1, Duration::from_millis(50))
        .await
        .unwrap();
    idle.settle(&[done[0].entry_id.clone()], Settled::Processed)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pruned = h
        .queues()
        .prune_idle_consumers(&queue, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(pruned, 1, "only the consumer without pending entries");
    let stats = h.queues().stats(&queue).await.unwrap();
    assert_eq!((stats.consumers, stats.pending), (1, 1));
    assert_eq!(
        h.queues()
            .prune_idle_consumers(&q("email"), Duration::ZERO)
            .await
            .unwrap(),
        0,
        "no stream yet"
    );
}
