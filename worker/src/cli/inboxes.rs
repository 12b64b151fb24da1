//! `worker inboxes paused [--json]` and `worker inboxes resume <inbox-id> [--json]`: inboxes whose
//! deliveries are held because their channel broke (token revoked, account locked), and letting
//! one send again once its credentials are fixed.
//!
//! Both are shared::channels::pause, the functions behind `POST /api/inboxes/{id}/deliveries/
//! resume`. `paused` lists each paused inbox with its reason, since when, and how many deliveries
//! it holds; `resume` clears the pause (durable record and Redis flag) and makes the held
//! deliveries due now. Exit codes: 0 done, 1 stores unreachable, 3 no such inbox, 8 the inbox is
//! not paused.

use chrono::Utc;
use clap::Subcommand;
use shared::{
    channels::pause::{self, PausedInbox, ResumeError},
    config::StoreConfig,
    db::DbPool,
};

use super::{
    CliError, Exit, Stores,
    failed::to_json,
    format::{Align, age, table, timestamp, truncate},
};

#[derive(Subcommand, Debug)]
pub enum InboxesCommand {
    /// Inboxes whose deliveries are paused: reason, since when, deliveries held.
    Paused {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Let a paused inbox send again; its held deliveries go out now.
    Resume {
        /// The inbox id (`inb_…`).
        inbox_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(stores: &Stores, command: InboxesCommand) -> Result<Exit, CliError> {
    let db = database()?;
    match command {
        InboxesCommand::Paused { json } => paused(stores, &db, json).await,
        InboxesCommand::Resume { inbox_id, json } => resume(stores, &db, &inbox_id, json).await,
    }
}

/// The inbox tables (`Stores` holds Postgres only for failed jobs).
fn database() -> Result<DbPool, CliError> {
    let config = StoreConfig::from_env().map_err(|e| CliError::Unavailable(e.to_string()))?;
    Ok(shared::db::pool(config.database_url.expose(), 2)?)
}

async fn paused(stores: &Stores, db: &DbPool, json: bool) -> Result<Exit, CliError> {
    let list = pause::paused(db, &stores.queues)
        .await
        .map_err(unavailable)?;
    if json {
        println!("{}", to_json(&list));
    } else if list.is_empty() {
        eprintln!("no paused inboxes");
    } else {
        print!("{}", render(&list));
    }
    Ok(Exit::Ok)
}

async fn resume(
    stores: &Stores,
    db: &DbPool,
    inbox_id: &str,
    json: bool,
) -> Result<Exit, CliError> {
    match pause::resume(db, &stores.queues, inbox_id).await {
        Ok(resumed) if json => println!("{}", to_json(&resumed)),
        Ok(resumed) => println!(
            "resumed {inbox_id} (paused: {}); {} held deliveries released",
            resumed.reason, resumed.released
        ),
        Err(e @ ResumeError::UnknownInbox(_)) => return Err(CliError::NotFound(e.to_string())),
        Err(e @ ResumeError::NotPaused(_)) => {
            eprintln!("error: {e}");
            return Ok(Exit::NotPaused);
        }
        Err(e) => return Err(unavailable(e)),
    }
    Ok(Exit::Ok)
}

fn unavailable(e: ResumeError) -> CliError {
    CliError::Unavailable(format!("cannot reach the stores: {e}"))
}

fn render(list: &[PausedInbox]) -> String {
    let headers = [
        ("INBOX", Align::Left),
        ("TENANT", Align::Left),
        ("KIND", Align::Left),
        ("NAME", Align::Left),
        ("PAUSED SINCE", Align::Left),
        ("FOR", Align::Right),
        ("HELD", Align::Right),
        ("REASON", Align::Left),
    ];
    let now = Utc::now();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            vec![
                p.inbox_id.clone(),
                p.tenant_id.clone(),
                p.kind.clone(),
                truncate(&p.name, 24),
                timestamp(p.since),
                age((now - p.since).num_milliseconds()),
                p.held.to_string(),
                truncate(&p.reason, 80),
            ]
        })
        .collect();
    table(&headers, &rows)
}
