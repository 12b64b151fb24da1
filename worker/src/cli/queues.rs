//! `worker queues [--watch] [--json] [--max-pending N] [--max-length N] [--max-age S]`: the queue
//! monitor. Per queue: stream length, jobs in flight and waiting, consumers and their idle times,
//! the oldest unfinished job's age, delayed jobs and the next due time, failed jobs, and processed
//! and failed jobs per minute.
//!
//! Rates come from sampling the queue's stats counters twice (`--sample` apart, or one `--watch`
//! refresh apart); a threshold crossed in the last sample makes the exit code 6, so a cron job or
//! an alerting check can run `worker queues --max-age 300` as it is.

use std::{collections::HashMap, io::IsTerminal, time::Duration};

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use shared::queue::{
    KNOWN_QUEUES, QueueName,
    inspect::{ConsumerInfo, QueueDetail},
};
use tokio::time::Instant;

use super::{CliError, Exit, Stores, failed::to_json, format::parse_duration};

#[derive(Args, Debug)]
pub struct QueuesArgs {
    /// Queues to show, comma separated (default: every known queue, and any with failed jobs).
    #[arg(long, value_delimiter = ',')]
    queue: Vec<String>,
    /// Refresh like top until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// Time between refreshes with --watch.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    interval: Duration,
    /// Stop --watch after this many refreshes (ignored without --watch).
    #[arg(long)]
    count: Option<u64>,
    /// How long to sample the counters for the per-minute rates before the first report (0: no
    /// rates on the first report).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    sample: Duration,
    /// Print JSON (one object per refresh with --watch).
    #[arg(long)]
    json: bool,
    /// Exit 6 when a queue has more jobs in flight than this.
    #[arg(long)]
    max_pending: Option<u64>,
    /// Exit 6 when a queue's stream holds more jobs (waiting and in flight) than this.
    #[arg(long)]
    max_length: Option<u64>,
    /// Exit 6 when a queue's oldest unfinished job is older than this (seconds, or 5m, 1h).
    #[arg(long, value_parser = parse_duration)]
    max_age: Option<Duration>,
}

/// One reading of every shown queue.
struct Frame {
    taken: Instant,
    details: Vec<QueueDetail>,
    /// Rows in `failed_jobs` per queue; `None` when Postgres could not be read.
    failed: Option<HashMap<String, i64>>,
}

/// One queue in the report (and in `--json`).
#[derive(Serialize)]
struct QueueRow {
    queue: String,
    length: u64,
    pending: u64,
    waiting: Option<u64>,
    consumers: Vec<ConsumerInfo>,
    oldest_age_ms: Option<i64>,
    oldest_pending_age_ms: Option<i64>,
    delayed: u64,
    next_due_ms: Option<i64>,
    next_due_in_ms: Option<i64>,
    failed_jobs: Option<i64>,
    processed_total: u64,
    failed_total: u64,
    retried_total: u64,
    processed_per_min: Option<f64>,
    failed_per_min: Option<f64>,
}

#[derive(Serialize)]
struct Breach {
    queue: String,
    threshold: &'static str,
    value: u64,
    limit: u64,
}

#[derive(Serialize)]
struct Report {
    at: DateTime<Utc>,
    queues: Vec<QueueRow>,
    breaches: Vec<Breach>,
}

pub async fn run(stores: &Stores, args: QueuesArgs) -> Result<Exit, CliError> {
    let names = queue_names(stores, &args.queue).await?;
    let mut previous = None;
    if !args.sample.is_zero() {
        previous = Some(capture(stores, &names).await?);
        tokio::time::sleep(args.sample).await;
    }
    let limit = if args.watch {
        args.count.unwrap_or(u64::MAX)
    } else {
        1
    };
    let mut exit = Exit::Ok;
    for refresh in 1..=limit {
        let frame = capture(stores, &names).await?;
        let report = report(&frame, previous.as_ref(), &args);
        exit = show(&report, &args);
        previous = Some(frame);
        if refresh == limit {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(exit)
}

/// `--queue` values checked to exist; by default the known queues and any with failed jobs.
async fn queue_names(stores: &Stores, wanted: &[String]) -> Result<Vec<QueueName>, CliError> {
    if !wanted.is_empty() {
        let mut names = Vec::new();
        for name in wanted {
            names.push(stores.resolve_queue(name.trim()).await?);
        }
        return Ok(names);
    }
    let mut names: Vec<QueueName> = QueueName::known();
    if let Ok(counts) = stores.failed.count_by_queue().await {
        for count in counts {
            if !KNOWN_QUEUES.contains(&count.queue.as_str())
                && let Ok(queue) = QueueName::new(&count.queue)
            {
                names.push(queue);
            }
        }
    }
    Ok(names)
}

async fn capture(stores: &Stores, names: &[QueueName]) -> Result<Frame, CliError> {
    let mut details = Vec::with_capacity(names.len());
    for name in names {
        details.push(stores.queues.detail(name).await?);
    }
    let failed = match stores.failed.count_by_queue().await {
        Ok(counts) => Some(counts.into_iter().map(|c| (c.queue, c.failed)).collect()),
        Err(e) => {
            eprintln!("warning: failed-job counts unavailable: cannot reach Postgres: {e}");
            None
        }
    };
    Ok(Frame {
        taken: Instant::now(),
        details,
        failed,
    })
}

fn report(frame: &Frame, previous: Option<&Frame>, args: &QueuesArgs) -> Report {
    let queues: Vec<QueueRow> = frame
        .details
        .iter()
        .map(|detail| {
            let before = previous.and_then(|p| {
                p.details
                    .iter()
                    .find(|d| d.stats.queue == detail.stats.queue)
            });
            let elapsed = previous.map(|p| frame.taken - p.taken).unwrap_or_default();
            let rate = |now: u64, then: Option<u64>| per_minute(then?, now, elapsed);
            let stats = &detail.stats;
            QueueRow {
                queue: stats.queue.clone(),
                length: stats.length,
                pending: stats.pending,
                waiting: detail.waiting(),
                consumers: detail.consumer_list.clone(),
                oldest_age_ms: detail.oldest_age_ms(),
                oldest_pending_age_ms: detail.oldest_pending_age_ms(),
                delayed: stats.delayed,
                next_due_ms: stats.next_due_ms,
                next_due_in_ms: stats.next_due_ms.map(|due| due - detail.now_ms),
                failed_jobs: frame
                    .failed
                    .as_ref()
                    .map(|f| f.get(&stats.queue).copied().unwrap_or(0)),
                processed_total: stats.processed,
                failed_total: stats.failed,
                retried_total: stats.retried,
                processed_per_min: rate(stats.processed, before.map(|b| b.stats.processed)),
                failed_per_min: rate(stats.failed, before.map(|b| b.stats.failed)),
            }
        })
        .collect();
    let breaches = queues.iter().flat_map(|row| breaches(row, args)).collect();
    Report {
        at: Utc::now(),
        queues,
        breaches,
    }
}

/// Counter growth per minute; `None` without a time span or when the counter was reset.
pub fn per_minute(before: u64, after: u64, elapsed: Duration) -> Option<f64> {
    if elapsed.is_zero() || after < before {
        return None;
    }
    Some((after - before) as f64 * 60.0 / elapsed.as_secs_f64())
}

fn breaches(row: &QueueRow, args: &QueuesArgs) -> Vec<Breach> {
    let age_ms = row.oldest_age_ms.unwrap_or(0).max(0) as u64;
    let checks = [
        ("max-pending", row.pending, args.max_pending),
        ("max-length", row.length, args.max_length),
        ("max-age", age_ms / 1000, args.max_age.map(|d| d.as_secs())),
    ];
    checks
        .into_iter()
        .filter_map(|(threshold, value, limit)| {
            let limit = limit?;
            (value > limit).then(|| Breach {
                queue: row.queue.clone(),
                threshold,
                value,
                limit,
            })
        })
        .collect()
}

/// Prints one report; returns the exit code it stands for.
fn show(report: &Report, args: &QueuesArgs) -> Exit {
    if args.json {
        let line = if args.watch {
            serde_json::to_string(report).unwrap_or_default()
        } else {
            to_json(report)
        };
        println!("{line}");
    } else {
        if args.watch && std::io::stdout().is_terminal() {
            print!("\x1b[2J\x1b[H");
            println!(
                "worker queues · every {} · {} UTC · Ctrl-C to quit\n",
                humantime::format_duration(args.interval),
                super::format::timestamp(report.at)
            );
        }
        print!("{}", render::text(&report.queues));
    }
    for breach in &report.breaches {
        let unit = if breach.threshold == "max-age" {
            "s"
        } else {
            ""
        };
        eprintln!(
            "threshold crossed: {} {} {}{unit} > --{} {}{unit}",
            breach.queue,
            breach.threshold.trim_start_matches("max-"),
            breach.value,
            breach.threshold,
            breach.limit
        );
    }
    if report.breaches.is_empty() {
        Exit::Ok
    } else {
        Exit::Threshold
    }
}

mod render {
    //! The text form of a report: one table row per queue, then each queue's consumers.

    use super::QueueRow;
    use crate::cli::format::{Align, age, table};

    pub fn text(rows: &[QueueRow]) -> String {
        let headers = [
            ("QUEUE", Align::Left),
            ("LENGTH", Align::Right),
            ("PENDING", Align::Right),
            ("WAITING", Align::Right),
            ("CONSUMERS", Align::Right),
            ("OLDEST", Align::Right),
            ("OLDEST PENDING", Align::Right),
            ("DELAYED", Align::Right),
            ("NEXT DUE", Align::Right),
            ("FAILED", Align::Right),
            ("DONE/MIN", Align::Right),
            ("FAILED/MIN", Align::Right),
        ];
        let cells: Vec<Vec<String>> = rows.iter().map(row).collect();
        let mut out = table(&headers, &cells);
        let consumers: Vec<String> = rows
            .iter()
            .flat_map(|r| {
                r.consumers.iter().map(move |c| {
                    format!(
                        "  {}  {}  pending {}  idle {}\n",
                        r.queue,
                        c.name,
                        c.pending,
                        age(c.idle_ms as i64)
                    )
                })
            })
            .collect();
        if !consumers.is_empty() {
            out += "\nconsumers:\n";
            out += &consumers.concat();
        }
        out
    }

    fn row(r: &QueueRow) -> Vec<String> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let rate = |v: Option<f64>| opt(v.map(|v| format!("{v:.1}")));
        vec![
            r.queue.clone(),
            r.length.to_string(),
            r.pending.to_string(),
            opt(r.waiting.map(|w| w.to_string())),
            r.consumers.len().to_string(),
            opt(r.oldest_age_ms.map(age)),
            opt(r.oldest_pending_age_ms.map(age)),
            r.delayed.to_string(),
            opt(r.next_due_in_ms.map(due)),
            opt(r.failed_jobs.map(|f| f.to_string())),
            rate(r.processed_per_min),
            rate(r.failed_per_min),
        ]
    }

    fn due(in_ms: i64) -> String {
        if in_ms < 0 {
            format!("overdue {}", age(-in_ms))
        } else {
            format!("in {}", age(in_ms))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_minute_and_skip_resets() {
        assert_eq!(per_minute(10, 40, Duration::from_secs(30)), Some(60.0));
        assert_eq!(per_minute(10, 10, Duration::from_secs(1)), Some(0.0));
        assert_eq!(per_minute(50, 10, Duration::from_secs(1)), None);
        assert_eq!(per_minute(0, 10, Duration::ZERO), None);
    }
}
