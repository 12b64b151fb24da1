//! `worker failed retry ID… | --all [--queue Q] [--kind K] [--since T] [--dry-run]`: put failed
//! jobs back on their queues with attempts reset, with a progress bar on stderr for large retries
//! and a summary on stdout at the end.
//!
//! The safety argument (row removed only once the job is back on its stream, never a lost job)
//! lives with the operation in `shared::queue::failed::retry`; this module selects and reports.

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shared::queue::failed::{RetrySelection, RetrySummary};

use super::{
    CliError, Exit, Stores,
    failed::{filter, to_json},
    format::{parse_failed_id, parse_since},
};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("which").required(true).args(["ids", "all"])))]
pub struct RetryArgs {
    /// Ids of failed jobs to retry.
    #[arg(value_parser = parse_failed_id)]
    ids: Vec<String>,
    /// Retry every failed job (narrowed by --queue, --kind, --since).
    #[arg(long, conflicts_with = "ids")]
    all: bool,
    // Filters narrow --all only. (`requires = "all"` would not do: a flag's default `false`
    // already satisfies it, so filters are declared to conflict with ids instead.)
    #[arg(long, conflicts_with = "ids")]
    queue: Option<String>,
    #[arg(long, conflicts_with = "ids")]
    kind: Option<String>,
    /// Only jobs that failed since then: a duration ago (1h, 30m) or an RFC 3339 time.
    #[arg(long, conflicts_with = "ids", value_parser = parse_since)]
    since: Option<DateTime<Utc>>,
    /// Report what would be retried; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Retries of at least this many jobs get a progress bar (when stderr is a terminal).
const PROGRESS_FROM: u64 = 100;

pub async fn run(stores: &Stores, args: RetryArgs) -> Result<Exit, CliError> {
    let (selection, total) = if args.all {
        let filter = filter(
            stores,
            args.queue.as_deref(),
            args.kind.as_deref(),
            args.since,
        )
        .await?;
        let total = stores.failed.count_matching(&filter).await? as u64;
        (RetrySelection::Matching(filter), total)
    } else {
        let total = args.ids.len() as u64;
        (RetrySelection::Ids(args.ids), total)
    };
    let bar = progress_bar(total, args.dry_run);
    let on_batch = |n: u64| bar.inc(n);
    let summary = stores
        .failed
        .retry(&stores.queues, &selection, args.dry_run, &on_batch)
        .await;
    bar.finish_and_clear();
    let summary = summary?;
    if args.json {
        println!("{}", to_json(&summary));
    } else {
        print!("{}", report(&summary));
    }
    verdict(&summary)
}

fn progress_bar(total: u64, dry_run: bool) -> ProgressBar {
    if total < PROGRESS_FROM || dry_run {
        return ProgressBar::hidden();
    }
    // `stderr()` draws only when stderr is a terminal, so pipes and CI logs stay clean.
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("retrying {bar:40} {pos}/{len} jobs ({eta} left)")
    {
        bar.set_style(style);
    }
    bar
}

/// The human summary: what was (or would be) retried, per queue, and what was not.
fn report(summary: &RetrySummary) -> String {
    let per_queue: Vec<String> = summary
        .by_queue
        .iter()
        .map(|(queue, n)| format!("{queue} {n}"))
        .collect();
    let mut out = if summary.dry_run {
        format!("dry run: would retry {} failed job(s)", summary.retried)
    } else {
        format!("retried {} failed job(s)", summary.retried)
    };
    if !per_queue.is_empty() {
        out += &format!(" ({})", per_queue.join(", "));
    }
    if summary.dry_run {
        out += "; nothing changed";
    }
    out.push('\n');
    if summary.selected == 0 {
        out = "no failed jobs match; nothing to retry\n".into();
    }
    for skipped in &summary.skipped {
        out += &format!(
            "skipped {}: {} (it stays in failed jobs)\n",
            skipped.id, skipped.reason
        );
    }
    if summary.vanished > 0 {
        out += &format!(
            "{} matching job(s) were already gone (retried or forgotten meanwhile)\n",
            summary.vanished
        );
    }
    out
}

fn verdict(summary: &RetrySummary) -> Result<Exit, CliError> {
    if !summary.not_found.is_empty() {
        return Err(CliError::NotFound(format!(
            "no failed job with id {}",
            summary.not_found.join(", ")
        )));
    }
    if !summary.skipped.is_empty() {
        eprintln!(
            "error: {} job(s) could not be retried; see `worker failed show ID`",
            summary.skipped.len()
        );
        return Ok(Exit::Partial);
    }
    Ok(Exit::Ok)
}
