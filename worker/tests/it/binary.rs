//! The real `worker` binary under crash and shutdown: SIGKILL mid-batch loses nothing and does
//! nothing twice; SIGTERM finishes in-flight jobs and exits 0.

use std::process::{Child, Command, Stdio};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::json;
use shared::queue::Job;

use crate::{Harness, eventually, q};

fn spawn_worker(h: &Harness, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(args)
        .env("REDIS_URL", shared::testkit::redis_url())
        .env("DATABASE_URL", &h.db.url)
        .env("SWITCHYARD_PREFIX", &h.redis.prefix)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("worker binary starts")
}

async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let mut status = None;
    eventually("the worker exits", || {
        let done = child.try_wait().expect("try_wait");
        if done.is_some() {
            status = done;
        }
        async move { done.is_some() }
    })
    .await;
    status.expect("exited")
}

async fn enqueue_many(h: &Harness, queue: &str, n: usize, payload: serde_json::Value) {
    let jobs: Vec<Job> = (0..n)
        .map(|_| Job::new(q(queue), "record", payload.clone()))
        .collect();
    for chunk in jobs.chunks(1000) {
        h.queues().enqueue_batch(chunk).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_drain_20000_jobs_exactly_once_when_one_is_killed_midway() {
    let h = Harness::new().await;
    enqueue_many(&h, "facebook", 20_000, json!({})).await;
    let args = ["--queue=facebook", "--timeout=5", "--concurrency=50"];
    let mut victim = spawn_worker(&h, &args);
    let mut survivor = spawn_worker(&h, &args);
    eventually("work is under way", || async {
        h.receipts().await >= 2_000
    })
    .await;
    victim.kill().expect("SIGKILL");
    victim.wait().unwrap();
    let killed_at = h.receipts().await;
    assert!(
        killed_at < 20_000,
        "the kill must land mid-way (had {killed_at})"
    );

    eventually("every job done, nothing pending or delayed", || async {
        let stats = h.queues().stats(&q("facebook")).await.unwrap();
        h.receipts().await == 20_000
            && stats.length == 0
            && stats.pending == 0
            && stats.delayed == 0
    })
    .await;
    assert_eq!(h.failed_jobs().count(None).await.unwrap(), 0);

    kill(Pid::from_raw(survivor.id() as i32), Signal::SIGTERM).unwrap();
    assert!(wait_exit(&mut survivor).await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_jobs_acks_them_and_exits_zero() {
    let h = Harness::new().await;
    enqueue_many(&h, "email", 10, json!({"sleep_ms": 1500})).await;
    let mut worker = spawn_worker(&h, &["--queue=email", "--concurrency=10", "--grace=20"]);
    eventually("all ten in flight", || async {
        h.pending("email").await == 10
    })
    .await;
    assert_eq!(h.receipts().await, 0);
    kill(Pid::from_raw(worker.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut worker).await;
    assert!(status.success(), "{status:?}");
    assert_eq!(h.receipts().await, 10, "in-flight jobs finished");
    assert_eq!(h.pending("email").await, 0, "and were acked before exit");
    assert_eq!(h.xlen("email").await, 0);
}

/// With a backlog, the reader is blocked handing entries to a full channel when SIGTERM comes;
/// shutdown must still end (long before a 10-minute grace) and hand every unstarted entry back.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_a_backlog_hands_unstarted_jobs_back_and_exits() {
    let h = Harness::new().await;
    enqueue_many(&h, "email", 2_000, json!({"sleep_ms": 20})).await;
    let mut worker = spawn_worker(&h, &["--queue=email", "--concurrency=20", "--grace=600"]);
    eventually("work is under way", || async { h.receipts().await >= 100 }).await;
    kill(Pid::from_raw(worker.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut worker).await;
    assert!(status.success(), "{status:?}");
    let stats = h.queues().stats(&q("email")).await.unwrap();
    assert_eq!(stats.pending, 0, "nothing left in flight");
    let done = h.receipts().await as u64;
    assert!(done < 2_000, "the backlog was not simply finished");
    assert_eq!(
        done + stats.length,
        2_000,
        "every job is either done or back in the stream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_queue_flag_is_a_clear_error() {
    let h = Harness::new().await;
    let out = Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("--queue=Bad Queue")
        .env("DATABASE_URL", &h.db.url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid queue name \"Bad Queue\""),
        "{stderr}"
    );
}
