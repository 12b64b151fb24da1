//! `worker failed …` run as the real binary against the test's Redis and Postgres: list, show,
//! retry (by id, --all, --dry-run, 10,000 at once with a real worker draining them), forget and
//! flush on seeded failures, and the exit codes of bad ids, unknown queues and refusals.

use std::process::{Child, Command, Output, Stdio};

use chrono::{DateTime, Utc};
use diesel_async::RunQueryDsl;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::{Value, json};
use shared::{
    db::schema::failed_jobs,
    queue::{Job, failed::FailedJob},
};

use crate::{Harness, builtin, eventually, q};

/// Runs `worker <args>` with the test's stores and no terminal on stdin.
pub fn cli(h: &Harness, args: &[&str]) -> Output {
    cli_with_env(h, args, &[])
}

pub fn cli_with_env(h: &Harness, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
    command
        .args(args)
        .env("REDIS_URL", shared::testkit::redis_url())
        .env("DATABASE_URL", &h.db.url)
        .env("SWITCHYARD_PREFIX", &h.redis.prefix)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("worker binary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it is not the one expected.
pub fn expect_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// A failed row for a job of `kind` on `queue` that failed at `failed_at` with `error`.
pub fn failure(
    queue: &str,
    kind: &str,
    payload: Value,
    error: &str,
    failed_at: DateTime<Utc>,
) -> FailedJob {
    let job = Job::new(q(queue), kind, payload).with_max_attempts(3);
    let job = job
        .next_attempt("first try failed")
        .next_attempt("second try failed");
    let mut row = FailedJob::from_job(&job, error);
    row.failed_at = failed_at;
    row
}

pub async fn seed(h: &Harness, rows: &[FailedJob]) {
    let mut conn = h.db.pool.get().await.unwrap();
    for chunk in rows.chunks(1000) {
        diesel::insert_into(failed_jobs::table)
            .values(chunk)
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

fn ago(minutes: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::minutes(minutes)
}

fn json_ids(out: &Output) -> Vec<String> {
    let rows: Vec<Value> = serde_json::from_str(&stdout(out)).expect("--json prints JSON");
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The envelopes on a queue's stream, oldest first.
async fn stream_jobs(h: &Harness, queue: &str) -> Vec<Job> {
    let mut conn = h.redis().await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&h.queues().keys(&q(queue)).stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|(_, fields)| serde_json::from_str(&fields[0].1).unwrap())
        .collect()
}

/// Three failures: an old email one with a multi-line error, and two recent facebook ones.
async fn three_failures(h: &Harness) -> [FailedJob; 3] {
    let rows = [
        failure(
            "email",
            "record",
            json!({"to": "a@example.com"}),
            "smtp 550 rejected\n  at send (smtp.rs:42)",
            ago(180),
        ),
        failure(
            "facebook",
            "flaky",
            json!({"fail_times": 9}),
            "graph api 500",
            ago(120),
        ),
        failure(
            "facebook",
            "record",
            json!({"n": 3}),
            "timed out after 30s",
            ago(10),
        ),
    ];
    seed(h, &rows).await;
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn list_shows_failures_newest_first_and_filters_them() {
    let h = Harness::new().await;
    let [old, mid, new] = three_failures(&h).await;
    let out = cli(&h, &["failed", "list"]);
    expect_code(&out, 0);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("ID")
            && lines[0].contains("FAILED AT (UTC)")
            && lines[0].ends_with("ERROR")
    );
    for (line, row) in lines[1..].iter().zip([&new, &mid, &old]) {
        assert!(line.starts_with(&row.id), "{line}");
        assert!(
            line.contains(&row.queue) && line.contains(&row.kind) && line.contains(" 3 "),
            "{line}"
        );
    }
    assert!(
        lines[3].ends_with("smtp 550 rejected"),
        "first line of the error only: {}",
        lines[3]
    );

    let ids = |args: &[&str]| {
        let out = cli(&h, &[&["failed", "list", "--json"][..], args].concat());
        expect_code(&out, 0);
        json_ids(&out)
    };
    assert_eq!(ids(&["--queue", "facebook"]), [new.id.as_str(), &mid.id]);
    assert_eq!(ids(&["--kind", "record"]), [new.id.as_str(), &old.id]);
    assert_eq!(ids(&["--since", "1h"]), [new.id.as_str()]);
    assert_eq!(
        ids(&["--queue", "facebook", "--kind", "flaky"]),
        [mid.id.as_str()]
    );
    assert!(ids(&["--queue", "widget"]).is_empty());

    let out = cli(&h, &["failed", "list", "--limit", "1"]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out).lines().count(), 2);
    assert!(
        stderr(&out).contains("showing 1 of 3 failed jobs"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn show_prints_payload_full_error_attempts_and_correlation_id() {
    let h = Harness::new().await;
    let [old, ..] = three_failures(&h).await;
    let out = cli(&h, &["failed", "show", &old.id]);
    expect_code(&out, 0);
    let text = stdout(&out);
    for want in [
        format!("id:             {}", old.id),
        "queue:          email".into(),
        "attempts:       3 of 3".into(),
        format!("correlation id: {}", old.correlation_id),
        "  smtp 550 rejected\n    at send (smtp.rs:42)\n".into(),
        "previous attempt's error:\n  second try failed".into(),
        "\"to\": \"a@example.com\"".into(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    let out = cli(&h, &["failed", "show", &old.id, "--json"]);
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["error"], old.error);
    assert_eq!(shown["payload"]["payload"]["to"], "a@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_by_id_reenqueues_with_attempts_reset_and_removes_only_that_row() {
    let h = Harness::new().await;
    let [old, mid, new] = three_failures(&h).await;
    let out = cli(&h, &["failed", "retry", &old.id, &new.id]);
    expect_code(&out, 0);
    assert_eq!(
        stdout(&out),
        "retried 2 failed job(s) (email 1, facebook 1)\n"
    );

    let email = stream_jobs(&h, "email").await;
    assert_eq!(email.len(), 1);
    assert_eq!(
        email[0].id.to_string(),
        old.id,
        "the same job id, so handlers dedup a double retry"
    );
    assert_eq!(
        (email[0].attempt, email[0].last_error.as_deref()),
        (1, None)
    );
    assert_eq!(email[0].payload, json!({"to": "a@example.com"}));
    assert_eq!(stream_jobs(&h, "facebook").await.len(), 1);
    let failed = h.failed_jobs();
    assert!(failed.find(&old.id).await.unwrap().is_none());
    assert!(failed.find(&new.id).await.unwrap().is_none());
    assert!(failed.find(&mid.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_reports_and_changes_nothing() {
    let h = Harness::new().await;
    let [old, ..] = three_failures(&h).await;
    let out = cli(&h, &["failed", "retry", "--all", "--dry-run"]);
    expect_code(&out, 0);
    assert_eq!(
        stdout(&out),
        "dry run: would retry 3 failed job(s) (email 1, facebook 2); nothing changed\n"
    );
    let out = cli(&h, &["failed", "retry", &old.id, "--dry-run", "--json"]);
    expect_code(&out, 0);
    let summary: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (summary["dry_run"].as_bool(), summary["retried"].as_u64()),
        (Some(true), Some(1))
    );
    assert_eq!(h.failed_jobs().count(None).await.unwrap(), 3);
    for queue in ["email", "facebook"] {
        assert_eq!(h.xlen(queue).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_all_with_filters_retries_only_the_matching_jobs() {
    let h = Harness::new().await;
    let [old, mid, new] = three_failures(&h).await;
    let out = cli(
        &h,
        &[
            "failed", "retry", "--all", "--queue", "facebook", "--since", "1h",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(stdout(&out), "retried 1 failed job(s) (facebook 1)\n");
    let left: Vec<String> = h
        .failed_jobs()
        .list(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, [mid.id, old.id]);
    assert_eq!(stream_jobs(&h, "facebook").await[0].id.to_string(), new.id);
    let out = cli(
        &h,
        &["failed", "retry", "--all", "--kind", "nothing-like-this"],
    );
    expect_code(&out, 0);
    assert_eq!(stdout(&out), "no failed jobs match; nothing to retry\n");
}

fn spawn_worker(h: &Harness, queue: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg(format!("--queue={queue}"))
        .arg("--concurrency=50")
        .env("REDIS_URL", shared::testkit::redis_url())
        .env("DATABASE_URL", &h.db.url)
        .env("SWITCHYARD_PREFIX", &h.redis.prefix)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("worker binary starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn retrying_10000_failed_jobs_processes_each_exactly_once() {
    const N: usize = 10_000;
    let h = Harness::new().await;
    let rows: Vec<FailedJob> = (0..N)
        .map(|i| {
            failure(
                "facebook",
                "record",
                json!({"n": i}),
                "provider down",
                ago(5),
            )
        })
        .collect();
    seed(&h, &rows).await;
    // The worker runs while the retry does, so jobs are processed as their batches land.
    let mut worker = spawn_worker(&h, "facebook");
    let out = cli(&h, &["failed", "retry", "--all"]);
    expect_code(&out, 0);
    assert_eq!(
        stdout(&out),
        "retried 10000 failed job(s) (facebook 10000)\n"
    );

    eventually("every retried job is processed", || async {
        let stats = h.queues().stats(&q("facebook")).await.unwrap();
        h.receipts().await == N as i64 && stats.length == 0 && stats.pending == 0
    })
    .await;
    let stats = h.queues().stats(&q("facebook")).await.unwrap();
    assert_eq!(
        stats.processed, N as u64,
        "each job was processed once, none twice"
    );
    assert_eq!((stats.failed, stats.retried), (0, 0));
    assert_eq!(h.failed_jobs().count(None).await.unwrap(), 0);
    kill(Pid::from_raw(worker.id() as i32), Signal::SIGTERM).unwrap();
    assert!(worker.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_job_that_fails_again_is_back_in_failed_jobs_never_lost() {
    let mut h = Harness::new().await;
    let rows: Vec<FailedJob> = (0..50)
        .map(|i| {
            failure(
                "email",
                "flaky",
                json!({"permanent": true, "n": i}),
                "rejected",
                ago(60),
            )
        })
        .collect();
    seed(&h, &rows).await;
    let registry = builtin(&h);
    h.start("email", registry, Harness::options("email"));
    let out = cli(&h, &["failed", "retry", "--all"]);
    expect_code(&out, 0);
    eventually("all 50 failed again", || async {
        h.queues().stats(&q("email")).await.unwrap().failed == 50
    })
    .await;
    let again = h.failed_jobs().list(None, 100).await.unwrap();
    assert_eq!(again.len(), 50, "every job is back in failed jobs");
    assert!(
        again
            .iter()
            .all(|r| r.failed_at > rows[0].failed_at && r.attempts == 1)
    );
    h.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_deletes_the_named_rows_and_reports_unknown_ids() {
    let h = Harness::new().await;
    let [old, mid, new] = three_failures(&h).await;
    let out = cli(&h, &["failed", "forget", &old.id]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out), "forgot 1 failed job(s)\n");
    let unknown = "01JD7ZQ4X8T5V9M2N6B3C1K0RA";
    let out = cli(&h, &["failed", "forget", &mid.id, unknown]);
    expect_code(&out, 3);
    assert_eq!(stdout(&out), "forgot 1 failed job(s)\n");
    assert_eq!(
        stderr(&out),
        format!("error: no failed job with id {unknown}\n")
    );
    let left = h.failed_jobs().list(None, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, new.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn flush_asks_first_and_deletes_only_what_matches() {
    let h = Harness::new().await;
    let [old, mid, new] = three_failures(&h).await;
    let out = cli(&h, &["failed", "flush"]);
    expect_code(&out, 5);
    assert!(
        stderr(&out).contains("refusing to delete 3 failed job(s) without confirmation: standard input is not a terminal; pass --yes"),
        "{}",
        stderr(&out)
    );
    assert_eq!(h.failed_jobs().count(None).await.unwrap(), 3);

    let out = cli(
        &h,
        &[
            "failed",
            "flush",
            "--queue",
            "facebook",
            "--older-than",
            "1h",
            "--yes",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(stdout(&out), "deleted 1 failed job(s)\n");
    let failed = h.failed_jobs();
    assert!(failed.find(&mid.id).await.unwrap().is_none());
    assert!(
        failed.find(&old.id).await.unwrap().is_some()
            && failed.find(&new.id).await.unwrap().is_some()
    );

    let out = cli(&h, &["failed", "flush", "--older-than", "7d"]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out), "no failed jobs match; nothing to delete\n");
    let out = cli(&h, &["failed", "flush", "-y"]);
    expect_code(&out, 0);
    assert_eq!(failed.count(None).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_ids_unknown_queues_and_unreachable_stores_have_their_own_exit_codes() {
    let h = Harness::new().await;
    let [old, ..] = three_failures(&h).await;
    let mut undecodable = failure(
        "email",
        "(undecodable)",
        json!({}),
        "envelope does not decode",
        ago(1),
    );
    undecodable.id = "entry-1700000000000-0".into();
    undecodable.payload = json!({"raw": "not json"});
    seed(&h, std::slice::from_ref(&undecodable)).await;
    let unknown = "01JD7ZQ4X8T5V9M2N6B3C1K0RA";

    let check = |args: &[&str], code: i32, message: &str| {
        let out = cli(&h, args);
        expect_code(&out, code);
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    };
    check(
        &["failed", "show", unknown],
        3,
        &format!("error: no failed job with id {unknown}"),
    );
    check(
        &["failed", "retry", unknown],
        3,
        &format!("error: no failed job with id {unknown}"),
    );
    check(
        &["failed", "show", "42"],
        2,
        "\"42\" is not a failed-job id",
    );
    check(
        &["failed", "forget", "not-an-id"],
        2,
        "is not a failed-job id",
    );
    check(
        &["failed", "list", "--queue", "nope"],
        4,
        "error: unknown queue \"nope\": known queues are whatsapp-messages",
    );
    check(
        &["failed", "list", "--queue", "Bad Queue"],
        4,
        "invalid queue name \"Bad Queue\"",
    );
    check(
        &["failed", "retry", "--all", "--queue", "nope"],
        4,
        "unknown queue \"nope\"",
    );
    check(
        &["failed", "flush", "--queue", "nope", "--yes"],
        4,
        "unknown queue \"nope\"",
    );
    check(
        &["failed", "retry"],
        2,
        "required arguments were not provided",
    );
    check(
        &["failed", "retry", &old.id, "--queue", "email"],
        2,
        "cannot be used with '--queue <QUEUE>'",
    );
    check(
        &["failed", "retry", "--queue", "email"],
        2,
        "required arguments were not provided",
    );
    check(
        &["failed", "list", "--since", "whenever"],
        2,
        "is neither a duration",
    );
    check(
        &["failed", "retry", &undecodable.id],
        7,
        "1 job(s) could not be retried",
    );
    assert!(
        h.failed_jobs()
            .find(&undecodable.id)
            .await
            .unwrap()
            .is_some(),
        "it stays"
    );
    assert_eq!(
        h.failed_jobs().count(None).await.unwrap(),
        4,
        "nothing else changed"
    );

    let out = cli_with_env(
        &h,
        &["failed", "list"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")],
    );
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("error: cannot reach Postgres (DATABASE_URL)"),
        "{}",
        stderr(&out)
    );
}
