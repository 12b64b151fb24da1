//! `worker queues` run as the real binary: it reports exactly the stream, pending, consumer,
//! delayed, failed and counter state the test created, and its thresholds set the exit code.

use chrono::Utc;
use serde_json::{Value, json};
use shared::queue::{Job, consume::StreamConsumer};

use crate::{
    Harness,
    cli_failed::{cli, cli_with_env, expect_code, failure, seed, stderr, stdout},
    job, q,
};

/// On `email`: five jobs, of which consumer c1 holds two and c2 one in flight (two waiting);
/// four delayed retries; three failed jobs (and one on facebook); and the stats counters.
/// Returns the earliest due time of the delayed jobs.
async fn seed_email(h: &Harness) -> i64 {
    let queue = q("email");
    let jobs: Vec<Job> = (0..5).map(|_| job("email", "record")).collect();
    let c1 = StreamConsumer::new(h.queues(), queue.clone(), "c1");
    c1.ensure_group().await.unwrap();
    h.queues().enqueue_batch(&jobs).await.unwrap();
    let c2 = StreamConsumer::new(h.queues(), queue.clone(), "c2");
    for (consumer, n) in [(&c1, 2), (&c2, 1)] {
        let mut conn = consumer
            .reader_connection(std::time::Duration::from_millis(100))
            .await
            .unwrap();
        let read = consumer
            .read(&mut conn, n, std::time::Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(read.len(), n);
    }
    let first_due = Utc::now().timestamp_millis() + 3_600_000;
    for i in 0..4 {
        h.queues()
            .enqueue_at(&job("email", "record"), first_due + i * 1000)
            .await
            .unwrap();
    }
    let rows: Vec<_> = ["email", "email", "email", "facebook"]
        .iter()
        .map(|queue| failure(queue, "record", json!({}), "boom", Utc::now()))
        .collect();
    seed(h, &rows).await;
    let mut conn = h.redis().await;
    redis::cmd("HSET")
        .arg(&h.queues().keys(&queue).stats)
        .arg(&["processed", "70", "failed", "3", "retried", "12"])
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    first_due
}

fn report(out: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(out)).expect("--json prints one JSON document")
}

fn queue<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["queue"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn queues_reports_the_numbers_the_test_created() {
    let h = Harness::new().await;
    let first_due = seed_email(&h).await;
    let out = cli(&h, &["queues", "--json", "--sample", "0"]);
    expect_code(&out, 0);
    let report = report(&out);
    let email = queue(&report, "email");
    assert_eq!(email["length"], 5);
    assert_eq!(email["pending"], 3);
    assert_eq!(email["waiting"], 2);
    let consumers: Vec<(String, u64)> = email["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["pending"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(consumers, [("c1".to_owned(), 2), ("c2".to_owned(), 1)]);
    assert!(email["consumers"][0]["idle_ms"].as_u64().is_some());
    assert!(email["oldest_age_ms"].as_i64().unwrap() >= 0);
    assert!(email["oldest_pending_age_ms"].as_i64().unwrap() >= 0);
    assert_eq!(email["delayed"], 4);
    assert_eq!(email["next_due_ms"], first_due);
    assert!(email["next_due_in_ms"].as_i64().unwrap() > 0);
    assert_eq!(email["failed_jobs"], 3);
    assert_eq!(
        (
            email["processed_total"].as_u64(),
            email["failed_total"].as_u64()
        ),
        (Some(70), Some(3))
    );
    assert_eq!(email["retried_total"], 12);
    assert!(email["processed_per_min"].is_null(), "no sample, no rate");
    let facebook = queue(&report, "facebook");
    assert_eq!(
        (
            facebook["length"].as_u64(),
            facebook["failed_jobs"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(facebook["consumers"], json!([]));
    assert_eq!(facebook["waiting"], 0);
    assert_eq!(report["breaches"], json!([]));
    assert_eq!(
        report["queues"].as_array().unwrap().len(),
        6,
        "every known queue"
    );

    // Sampled for a moment with nothing running: the rates are there and zero.
    let out = cli(
        &h,
        &["queues", "--json", "--sample", "200ms", "--queue", "email"],
    );
    expect_code(&out, 0);
    let report = self::report(&out);
    assert_eq!(report["queues"].as_array().unwrap().len(), 1);
    assert_eq!(queue(&report, "email")["processed_per_min"], 0.0);

    // The table shows the same numbers, and the consumers.
    let out = cli(&h, &["queues", "--sample", "0", "--queue", "email"]);
    expect_code(&out, 0);
    let text = stdout(&out);
    let row = text.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..5], ["email", "5", "3", "2", "2"], "{text}");
    assert!(
        row.contains(" in 59m") || row.contains(" in 1h00m"),
        "{row}"
    );
    assert!(
        text.contains("consumers:\n  email  c1  pending 2  idle "),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn thresholds_set_the_exit_code_and_name_the_queue() {
    let h = Harness::new().await;
    seed_email(&h).await;
    // An entry added in 1970 (explicit id) on widget: its age crosses any --max-age.
    let mut conn = h.redis().await;
    redis::cmd("XADD")
        .arg(&h.queues().keys(&q("widget")).stream)
        .arg("1000-0")
        .arg("job")
        .arg("{}")
        .query_async::<String>(&mut conn)
        .await
        .unwrap();
    let run = |args: &[&str]| cli(&h, &[&["queues", "--sample", "0"][..], args].concat());
    let widget = report(&run(&["--json", "--queue", "widget"]));
    assert_eq!(
        widget["queues"][0]["waiting"], 1,
        "no worker joined yet: all of it waits"
    );

    expect_code(
        &run(&[
            "--max-pending",
            "3",
            "--max-length",
            "5",
            "--queue",
            "email",
        ]),
        0,
    );
    let out = run(&["--max-pending", "2"]);
    expect_code(&out, 6);
    assert_eq!(
        stderr(&out),
        "threshold crossed: email pending 3 > --max-pending 2\n"
    );
    let out = run(&["--max-length", "4", "--json"]);
    expect_code(&out, 6);
    assert_eq!(
        report(&out)["breaches"],
        json!([{"queue": "email", "threshold": "max-length", "value": 5, "limit": 4}])
    );
    expect_code(&run(&["--max-age", "3600", "--queue", "email"]), 0);
    let out = run(&["--max-age", "1h", "--queue", "widget,email"]);
    expect_code(&out, 6);
    assert!(
        stderr(&out).starts_with("threshold crossed: widget age "),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("email"));
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_refreshes_count_times_and_unknown_queues_are_exit_4() {
    let h = Harness::new().await;
    seed_email(&h).await;
    let out = cli(
        &h,
        &[
            "queues",
            "--watch",
            "--count",
            "3",
            "--interval",
            "10ms",
            "--sample",
            "0",
            "--json",
            "--queue",
            "email",
        ],
    );
    expect_code(&out, 0);
    let frames: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.len(), 3);
    assert!(frames[0]["queues"][0]["processed_per_min"].is_null());
    assert_eq!(
        frames[2]["queues"][0]["processed_per_min"], 0.0,
        "rates between refreshes"
    );

    let out = cli(&h, &["queues", "--queue", "email,nope"]);
    expect_code(&out, 4);
    assert!(
        stderr(&out).contains("error: unknown queue \"nope\""),
        "{}",
        stderr(&out)
    );
    let out = cli_with_env(
        &h,
        &["queues", "--sample", "0"],
        &[("REDIS_URL", "redis://127.0.0.1:1")],
    );
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("error: cannot reach Redis (REDIS_URL)"),
        "{}",
        stderr(&out)
    );
}
