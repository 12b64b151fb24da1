//! The retry policy end to end: delays follow the queue's policy (asserted on the due times the
//! worker schedules, not on sleeps), and exhausted jobs land in failed_jobs.

use std::time::Duration;

use serde_json::json;
use shared::queue::{Job, RetryPolicy};

use crate::{Harness, builtin, eventually, q};

/// Waits for the next retry to be scheduled, checks its due time against the policy, then
/// makes it due now (the test drives time, the worker does not sleep).
async fn expect_retry(
    h: &Harness,
    queue: &str,
    failed_attempt: u32,
    scheduled_after_ms: i64,
) -> Job {
    eventually("a retry is scheduled", || async {
        h.delayed(queue).await.len() == 1
    })
    .await;
    let (member, due) = h.delayed(queue).await.remove(0);
    let next: Job = serde_json::from_str(&member).unwrap();
    assert_eq!(next.attempt, failed_attempt + 1);
    let (low, high) = RetryPolicy::for_queue(queue).delay_bounds(failed_attempt);
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        due >= scheduled_after_ms + low.as_millis() as i64,
        "due {due} too early for attempt {failed_attempt}"
    );
    assert!(
        due <= now + high.as_millis() as i64,
        "due {due} too late for attempt {failed_attempt}"
    );
    let promoted = h.queues().promote_due(&q(queue), due, 10).await.unwrap();
    assert_eq!(promoted, 1);
    next
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_failing_twice_then_succeeding_is_done_on_attempt_three() {
    let mut h = Harness::new().await;
    let flaky = Job::new(
        q("facebook"),
        "flaky",
        json!({"fail_times": 2, "error": "upstream 503"}),
    );
    h.queues().enqueue(&flaky).await.unwrap();
    h.start("facebook", builtin(&h), Harness::options("facebook"));
    let t0 = chrono::Utc::now().timestamp_millis();
    let second = expect_retry(&h, "facebook", 1, t0).await;
    assert!(
        second
            .last_error
            .as_deref()
            .unwrap()
            .contains("upstream 503")
    );
    let t1 = chrono::Utc::now().timestamp_millis();
    expect_retry(&h, "facebook", 2, t1 - 100).await;
    eventually("done", || async { h.receipts().await == 1 }).await;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Attempt {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        attempt: i32,
    }
    let mut conn = h.db.pool.get().await.unwrap();
    let done: Attempt = diesel::sql_query("SELECT attempt FROM job_receipts")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.attempt, 3);
    assert_eq!(h.failed_jobs().count(None).await.unwrap(), 0);
    let stats = h.queues().stats(&q("facebook")).await.unwrap();
    assert_eq!((stats.retried, stats.processed, stats.failed), (2, 1, 0));
    h.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_always_fails_lands_in_failed_jobs_after_its_tries() {
    let mut h = Harness::new().await;
    // deliveries: 5 tries on the 10/30/60/120 s table.
    let doomed = Job::new(q("deliveries"), "flaky", json!({"error": "provider 500"}));
    h.queues().enqueue(&doomed).await.unwrap();
    h.start("deliveries", builtin(&h), Harness::options("deliveries"));
    for attempt in 1..=4 {
        let now = chrono::Utc::now().timestamp_millis();
        expect_retry(&h, "deliveries", attempt, now - 1000).await;
    }
    let failed = h.failed_jobs();
    eventually("failed", || async {
        failed.find(&doomed.id.to_string()).await.unwrap().is_some()
    })
    .await;
    let row = failed.find(&doomed.id.to_string()).await.unwrap().unwrap();
    assert_eq!(row.attempts, 5);
    assert!(
        row.error.contains("provider 500 (attempt 5)"),
        "{}",
        row.error
    );
    assert!(
        row.error.contains("gave up after 5 attempts"),
        "{}",
        row.error
    );
    assert!(h.delayed("deliveries").await.is_empty());
    eventually("acked", || async { h.xlen("deliveries").await == 0 }).await;
    h.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_error_fails_at_once_and_tries_flag_overrides_the_policy() {
    let mut h = Harness::new().await;
    let permanent = Job::new(
        q("email"),
        "flaky",
        json!({"permanent": true, "error": "invalid address"}),
    );
    let transient = Job::new(q("email"), "flaky", json!({"error": "timeout"}));
    h.queues()
        .enqueue_batch(&[permanent.clone(), transient.clone()])
        .await
        .unwrap();
    let mut options = Harness::options("email");
    options.tries_override = Some(1);
    h.start("email", builtin(&h), options);
    let failed = h.failed_jobs();
    eventually("both failed", || async {
        failed.count(Some("email")).await.unwrap() == 2
    })
    .await;
    let row = failed
        .find(&permanent.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.attempts, row.error.as_str()), (1, "invalid address"));
    let row = failed
        .find(&transient.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.error.contains("gave up after 1 attempts"),
        "{}",
        row.error
    );
    assert!(h.delayed("email").await.is_empty());
    h.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn due_jobs_are_promoted_and_future_ones_wait() {
    let h = Harness::new().await;
    let now = chrono::Utc::now().timestamp_millis();
    h.queues()
        .enqueue_at(&Job::new(q("webhooks"), "noop", json!({})), now - 1)
        .await
        .unwrap();
    h.queues()
        .enqueue_at(&Job::new(q("webhooks"), "noop", json!({})), now + 60_000)
        .await
        .unwrap();
    assert_eq!(
        h.queues()
            .promote_due(&q("webhooks"), now, 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        h.queues()
            .promote_due(&q("webhooks"), now, 100)
            .await
            .unwrap(),
        0,
        "promoted once"
    );
    assert_eq!(h.xlen("webhooks").await, 1);
    assert_eq!(h.delayed("webhooks").await.len(), 1);
    let _ = Duration::ZERO;
}
