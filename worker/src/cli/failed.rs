//! `worker failed list|show|retry|forget|flush`: the failed-jobs store (Postgres `failed_jobs`)
//! for on-call engineers. Reads and deletes go through `shared::queue::failed`; this module only
//! parses arguments, asks for confirmation and prints. `retry` lives in `retry.rs`.

use std::io::{BufRead, IsTerminal, Write};

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use shared::queue::failed::{FailedFilter, FailedJob};

use super::{
    CliError, Exit, Stores,
    format::{
        Align, age, parse_duration, parse_failed_id, parse_since, table, timestamp, truncate,
    },
    retry::RetryArgs,
};

#[derive(Subcommand, Debug)]
pub enum FailedCommand {
    /// List failed jobs, newest first.
    List(ListArgs),
    /// Show one failed job: payload, full error, attempts, correlation id.
    Show(ShowArgs),
    /// Put failed jobs back on their queues with attempts reset.
    Retry(RetryArgs),
    /// Delete failed jobs by id.
    Forget(ForgetArgs),
    /// Delete every failed job (of a queue, older than a duration); asks first unless --yes.
    Flush(FlushArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only this job kind.
    #[arg(long)]
    kind: Option<String>,
    /// Only jobs that failed since then: a duration ago (1h, 30m, 2d) or an RFC 3339 time.
    #[arg(long, value_parser = parse_since)]
    since: Option<DateTime<Utc>>,
    /// Most rows shown (0: all).
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Print the rows as JSON (with payloads) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[arg(value_parser = parse_failed_id)]
    id: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    #[arg(required = true, value_parser = parse_failed_id)]
    ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct FlushArgs {
    /// Only this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only jobs that failed longer ago than this (7d, 12h, 30m).
    #[arg(long, value_parser = parse_duration)]
    older_than: Option<std::time::Duration>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
}

pub async fn run(stores: &Stores, command: FailedCommand) -> Result<Exit, CliError> {
    match command {
        FailedCommand::List(args) => list(stores, args).await,
        FailedCommand::Show(args) => show(stores, args).await,
        FailedCommand::Retry(args) => super::retry::run(stores, args).await,
        FailedCommand::Forget(args) => forget(stores, args).await,
        FailedCommand::Flush(args) => flush(stores, args).await,
    }
}

/// The filter of `--queue`, `--kind` and `--since`, with the queue checked to exist.
pub async fn filter(
    stores: &Stores,
    queue: Option<&str>,
    kind: Option<&str>,
    since: Option<DateTime<Utc>>,
) -> Result<FailedFilter, CliError> {
    let mut filter = FailedFilter {
        since,
        kind: kind.map(str::to_owned),
        ..Default::default()
    };
    if let Some(queue) = queue {
        filter.queue = Some(stores.resolve_queue(queue).await?.to_string());
    }
    Ok(filter)
}

async fn list(stores: &Stores, args: ListArgs) -> Result<Exit, CliError> {
    let filter = filter(
        stores,
        args.queue.as_deref(),
        args.kind.as_deref(),
        args.since,
    )
    .await?;
    let limit = if args.limit <= 0 {
        i64::MAX
    } else {
        args.limit
    };
    let rows = stores.failed.search(&filter, limit, 0).await?;
    if args.json {
        println!("{}", to_json(&rows));
        return Ok(Exit::Ok);
    }
    if rows.is_empty() {
        println!("no failed jobs");
        return Ok(Exit::Ok);
    }
    print!("{}", list_table(&rows));
    let total = stores.failed.count_matching(&filter).await?;
    if total > rows.len() as i64 {
        eprintln!(
            "showing {} of {total} failed jobs (--limit N, 0 for all)",
            rows.len()
        );
    }
    Ok(Exit::Ok)
}

fn list_table(rows: &[FailedJob]) -> String {
    let headers = [
        ("ID", Align::Left),
        ("QUEUE", Align::Left),
        ("KIND", Align::Left),
        ("ATTEMPTS", Align::Right),
        ("FAILED AT (UTC)", Align::Left),
        ("ERROR", Align::Left),
    ];
    let now = Utc::now();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.id.clone(),
                row.queue.clone(),
                row.kind.clone(),
                row.attempts.to_string(),
                format!(
                    "{} ({} ago)",
                    timestamp(row.failed_at),
                    age((now - row.failed_at).num_milliseconds())
                ),
                truncate(row.error_summary(), 80),
            ]
        })
        .collect();
    table(&headers, &cells)
}

async fn show(stores: &Stores, args: ShowArgs) -> Result<Exit, CliError> {
    let row = stores
        .failed
        .find(&args.id)
        .await?
        .ok_or_else(|| not_found(&args.id))?;
    if args.json {
        println!("{}", to_json(&row));
    } else {
        print!("{}", describe(&row));
    }
    Ok(Exit::Ok)
}

/// The `show` page: fields, then the full error, then the payload.
fn describe(row: &FailedJob) -> String {
    let envelope = row.envelope();
    let field = |name: &str, value: &str| format!("{:<16}{value}\n", format!("{name}:"));
    let mut out = String::new();
    out += &field("id", &row.id);
    out += &field("queue", &row.queue);
    out += &field("kind", &row.kind);
    let max = envelope.as_ref().map(|e| e.max_attempts.to_string());
    out += &field(
        "attempts",
        &format!("{} of {}", row.attempts, max.as_deref().unwrap_or("?")),
    );
    out += &field("failed at", &format!("{} UTC", timestamp(row.failed_at)));
    if let Some(job) = &envelope {
        out += &field(
            "enqueued at",
            &format!("{} UTC", timestamp(job.enqueued_at)),
        );
    }
    out += &field("correlation id", &row.correlation_id);
    out += &field("tenant", row.tenant_id.as_deref().unwrap_or("-"));
    out += "\nerror:\n";
    out += &indent(&row.error);
    if let Some(previous) = envelope.as_ref().and_then(|j| j.last_error.as_deref()) {
        out += "\nprevious attempt's error:\n";
        out += &indent(previous);
    }
    out += "\npayload:\n";
    let payload = envelope.as_ref().map_or(&row.payload, |job| &job.payload);
    out += &indent(&serde_json::to_string_pretty(payload).unwrap_or_default());
    if envelope.is_none() {
        out += "\n(the stored envelope does not decode as a job: it cannot be retried)\n";
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

async fn forget(stores: &Stores, args: ForgetArgs) -> Result<Exit, CliError> {
    let summary = stores.failed.forget_many(&args.ids).await?;
    println!("forgot {} failed job(s)", summary.forgotten.len());
    match summary.not_found.as_slice() {
        [] => Ok(Exit::Ok),
        missing => Err(CliError::NotFound(format!(
            "no failed job with id {}",
            missing.join(", ")
        ))),
    }
}

async fn flush(stores: &Stores, args: FlushArgs) -> Result<Exit, CliError> {
    let mut filter = filter(stores, args.queue.as_deref(), None, None).await?;
    if let Some(older) = args.older_than {
        let older = chrono::Duration::from_std(older).unwrap_or(chrono::Duration::MAX);
        filter.before = Some(Utc::now() - older);
    }
    let matching = stores.failed.count_matching(&filter).await?;
    if matching == 0 {
        println!("no failed jobs match; nothing to delete");
        return Ok(Exit::Ok);
    }
    let what = describe_flush(matching, &args);
    if !args.yes {
        confirm(&what)?;
    }
    let deleted = stores.failed.flush(&filter).await?;
    println!("deleted {deleted} failed job(s)");
    Ok(Exit::Ok)
}

fn describe_flush(matching: i64, args: &FlushArgs) -> String {
    let mut what = format!("delete {matching} failed job(s)");
    if let Some(queue) = &args.queue {
        what += &format!(" of queue {queue}");
    }
    if let Some(older) = args.older_than {
        what += &format!(
            " that failed more than {} ago",
            humantime::format_duration(older)
        );
    }
    what
}

/// Asks on the terminal; without one, refuses rather than guess.
fn confirm(what: &str) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Refused(format!(
            "refusing to {what} without confirmation: standard input is not a terminal; \
             pass --yes to confirm"
        )));
    }
    eprint!("{what}? This cannot be undone. [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(CliError::Refused("not confirmed; nothing deleted".into()))
    }
}

pub fn not_found(id: &str) -> CliError {
    CliError::NotFound(format!("no failed job with id {id}"))
}

pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Rows and summaries are plain data (strings, numbers, JSON values): serialising cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default()
}
