//! `worker admin …`: provisioning from the command line — tenants, inboxes (with their provider
//! ids, secrets and bot settings), bot intents, agents and API keys, created and listed — and
//! `seed-demo`, which makes a demo tenant with a WAHA inbox, an agent and API keys and prints
//! how to drive a conversation through the running fleet.
//!
//! Every command goes through shared::conversation and shared::inboxes, the same code the
//! operator API uses; this file only parses flags and prints. Output is one line per row, or
//! JSON with `--json`. Secrets are printed only when created (API tokens cannot be shown again).
//! `relay-outbox` sends what a crash or a Redis outage left in the outbox (the workers do it on
//! their own as well).

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use shared::{
    config::StoreConfig,
    conversation::{
        Conversations, agents,
        api_keys::{self, Scope},
        directory,
        settings::{self, BotKind, IntentRule},
    },
    events::Broadcaster,
    inboxes::{self, InboxKind, NewInbox},
    queue::Queues,
};

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Tenants: create, list.
    #[command(subcommand)]
    Tenants(TenantCommand),
    /// Inboxes (channel accounts): create, list, settings.
    #[command(subcommand)]
    Inboxes(InboxCommand),
    /// The rules bot's intents of an inbox: add, list.
    #[command(subcommand)]
    Intents(IntentCommand),
    /// Agents: create, list, available.
    #[command(subcommand)]
    Agents(AgentCommand),
    /// API keys: create, list, revoke.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(KeyCommand),
    /// A demo tenant with a WAHA inbox, an agent and API keys; prints how to try it.
    SeedDemo(SeedArgs),
    /// Publishes events and enqueues follow-up jobs still waiting in the outbox (left by a crash
    /// or a Redis outage) that are older than `--older-than` seconds.
    RelayOutbox {
        #[arg(long, default_value_t = 10)]
        older_than: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    Create {
        #[arg(long)]
        name: String,
    },
    List,
}

#[derive(Subcommand, Debug)]
pub enum InboxCommand {
    Create(NewInboxArgs),
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Sets an inbox's bot and pipeline settings (unset flags keep their value).
    Settings(SettingsArgs),
}

#[derive(Args, Debug)]
pub struct NewInboxArgs {
    #[arg(long)]
    pub tenant: String,
    /// waha, messenger, whatsapp_cloud, email or widget.
    #[arg(long)]
    pub kind: String,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub page_id: Option<String>,
    #[arg(long)]
    pub phone_number_id: Option<String>,
    #[arg(long)]
    pub waha_session: Option<String>,
    #[arg(long)]
    pub waha_hmac_key: Option<String>,
    #[arg(long)]
    pub widget_token: Option<String>,
    /// mailgun or postmark.
    #[arg(long)]
    pub email_provider: Option<String>,
    #[arg(long)]
    pub mailgun_signing_key: Option<String>,
    #[arg(long)]
    pub postmark_user: Option<String>,
    #[arg(long)]
    pub postmark_password: Option<String>,
}

#[derive(Args, Debug)]
pub struct SettingsArgs {
    pub inbox: String,
    /// rules, http or off (off: every conversation goes straight to agents).
    #[arg(long)]
    pub bot: Option<String>,
    #[arg(long)]
    pub bot_url: Option<String>,
    #[arg(long)]
    pub bot_timeout_ms: Option<i32>,
    /// Unrecognised messages in a row before a handoff (0: never).
    #[arg(long)]
    pub handoff_after: Option<i32>,
    #[arg(long)]
    pub fallback_reply: Option<String>,
    #[arg(long)]
    pub csat_prompt: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum IntentCommand {
    /// Adds (or replaces, by name) an intent.
    Add {
        #[arg(long)]
        inbox: String,
        #[arg(long)]
        name: String,
        /// A keyword or phrase, `/regex/`, or `postback:PAYLOAD`; repeat for several.
        #[arg(long = "pattern", required = true)]
        patterns: Vec<String>,
        #[arg(long)]
        reply: Option<String>,
        /// Hand the session to an agent when it matches.
        #[arg(long)]
        handoff: bool,
        #[arg(long, default_value_t = 0)]
        priority: i32,
    },
    List {
        #[arg(long)]
        inbox: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Conversations at once.
        #[arg(long, default_value_t = 3)]
        capacity: i32,
    },
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Turns an agent's availability on (`true`) or off (`false`).
    Available {
        agent: String,
        #[arg(long)]
        tenant: String,
        #[arg(action = clap::ArgAction::Set)]
        available: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Creates a key and prints its token (shown only now).
    Create {
        #[arg(
            long,
            conflicts_with = "operator",
            required_unless_present = "operator"
        )]
        tenant: Option<String>,
        /// A provisioning key for every tenant.
        #[arg(long)]
        operator: bool,
        #[arg(long)]
        name: String,
    },
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    Revoke {
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// Where ingress is reachable, for the printed commands.
    #[arg(long, env = "DEMO_BASE_URL", default_value = "http://localhost:8080")]
    pub base_url: String,
}

/// Runs one admin command; errors go to stderr with their causes, exit code 1.
pub async fn main(args: AdminArgs) -> std::process::ExitCode {
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one admin command against the stores in the environment.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let stores = StoreConfig::from_env()?;
    let db = shared::db::pool(stores.database_url.expose(), 2).context("DATABASE_URL")?;
    let queues = Queues::new(stores.redis_url.expose(), &stores.prefix).context("REDIS_URL")?;
    let conversations = Conversations::new(
        db,
        queues.clone(),
        Broadcaster::from_env(queues),
        "switchyard.admin",
    );
    let out = Printer { json: args.json };
    match args.command {
        AdminCommand::Tenants(c) => tenants(&conversations, c, &out).await,
        AdminCommand::Inboxes(c) => inbox(&conversations, c, &out).await,
        AdminCommand::Intents(c) => intents(&conversations, c, &out).await,
        AdminCommand::Agents(c) => agent(&conversations, c, &out).await,
        AdminCommand::ApiKeys(c) => keys(&conversations, c, &out).await,
        AdminCommand::SeedDemo(a) => crate::admin_demo::seed(&conversations, &a, &out).await,
        AdminCommand::RelayOutbox { older_than } => {
            let age = std::time::Duration::from_secs(older_than);
            let mut sent = 0;
            loop {
                let n = conversations.outbox.relay_stale(age, 500).await?;
                sent += n;
                if n < 500 {
                    break;
                }
            }
            out.one("relayed", &json!({ "rows": sent }));
            Ok(())
        }
    }
}

/// Prints rows as text lines or JSON.
pub struct Printer {
    pub json: bool,
}

impl Printer {
    /// One created thing: `label` and its fields.
    pub fn one(&self, label: &str, value: &Value) {
        if self.json {
            println!("{value}");
        } else {
            println!("{label}: {}", line(value));
        }
    }

    pub fn many(&self, rows: &[Value]) {
        if self.json {
            println!("{}", Value::Array(rows.to_vec()));
        } else if rows.is_empty() {
            println!("(none)");
        } else {
            rows.iter().for_each(|r| println!("{}", line(r)));
        }
    }
}

/// `key=value` pairs of an object, nulls left out.
fn line(value: &Value) -> String {
    match value.as_object() {
        Some(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join("  "),
        None => value.to_string(),
    }
}

fn rows<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .map(|i| serde_json::to_value(i).unwrap_or(Value::Null))
        .collect()
}

async fn tenants(c: &Conversations, command: TenantCommand, out: &Printer) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { name } => {
            let id = inboxes::create_tenant(&c.db, name.trim()).await?;
            out.one("tenant", &json!({ "id": id, "name": name.trim() }));
        }
        TenantCommand::List => {
            let mut conn = c.db.get().await?;
            out.many(&rows(&directory::tenants(&mut conn).await?));
        }
    }
    Ok(())
}

async fn inbox(c: &Conversations, command: InboxCommand, out: &Printer) -> anyhow::Result<()> {
    match command {
        InboxCommand::Create(a) => {
            let mut conn = c.db.get().await?;
            if !directory::tenant_exists(&mut conn, &a.tenant).await? {
                anyhow::bail!("tenant {} not found", a.tenant);
            }
            let new = new_inbox(a)?;
            let id = inboxes::create_inbox(&c.db, &new).await?;
            out.one(
                "inbox",
                &json!({ "id": id, "tenant_id": new.tenant_id, "kind": new.kind, "name": new.name }),
            );
        }
        InboxCommand::List { tenant } => {
            let mut conn = c.db.get().await?;
            out.many(&rows(
                &directory::inboxes(&mut conn, tenant.as_deref()).await?,
            ));
        }
        InboxCommand::Settings(a) => {
            let mut conn = c.db.get().await?;
            directory::inbox_kind(&mut conn, &a.inbox).await?;
            let mut s = settings::load(&mut conn, &a.inbox).await?;
            if let Some(bot) = a.bot {
                s.bot = BotKind::parse(&bot)?;
            }
            s.bot_url = a.bot_url.or(s.bot_url);
            s.bot_timeout_ms = a.bot_timeout_ms.unwrap_or(s.bot_timeout_ms);
            s.handoff_after = a.handoff_after.unwrap_or(s.handoff_after);
            s.fallback_reply = a.fallback_reply.or(s.fallback_reply);
            s.csat_prompt = a.csat_prompt.or(s.csat_prompt);
            settings::save(&mut conn, &s).await?;
            out.one("settings", &serde_json::to_value(&s)?);
        }
    }
    Ok(())
}

/// An inbox from flags: the database's checks (e.g. a Messenger inbox needs a page id) are the
/// final word; the kind is checked here for a clearer message.
pub fn new_inbox(a: NewInboxArgs) -> anyhow::Result<NewInbox> {
    let kind: InboxKind = a.kind.parse().map_err(anyhow::Error::msg)?;
    let mut inbox = NewInbox::new(&a.tenant, kind, a.name.trim());
    inbox.page_id = a.page_id;
    inbox.phone_number_id = a.phone_number_id;
    inbox.waha_session = a.waha_session;
    inbox.waha_hmac_key = a.waha_hmac_key;
    inbox.widget_token = a.widget_token;
    inbox.email_provider = a.email_provider;
    inbox.mailgun_signing_key = a.mailgun_signing_key;
    inbox.postmark_user = a.postmark_user;
    inbox.postmark_password = a.postmark_password;
    Ok(inbox)
}

async fn intents(c: &Conversations, command: IntentCommand, out: &Printer) -> anyhow::Result<()> {
    let mut conn = c.db.get().await?;
    match command {
        IntentCommand::Add {
            inbox,
            name,
            patterns,
            reply,
            handoff,
            priority,
        } => {
            directory::inbox_kind(&mut conn, &inbox).await?;
            let rule = IntentRule {
                name,
                patterns,
                reply,
                handoff,
                priority,
            };
            shared::bot::RulesBot::new(vec![rule.clone()], None).map_err(anyhow::Error::msg)?;
            settings::save_intent(&mut conn, &inbox, &rule).await?;
            out.one("intent", &serde_json::to_value(&rule)?);
        }
        IntentCommand::List { inbox } => {
            out.many(&rows(&settings::intents(&mut conn, &inbox).await?));
        }
    }
    Ok(())
}

async fn agent(c: &Conversations, command: AgentCommand, out: &Printer) -> anyhow::Result<()> {
    match command {
        AgentCommand::Create {
            tenant,
            name,
            email,
            capacity,
        } => {
            let new = agents::NewAgent {
                name,
                email,
                capacity,
            };
            let mut tx = c
                .begin(&tenant, &format!("admin:{}", ulid::Ulid::new()))
                .await?;
            let result = agents::create(&mut tx, &new).await;
            let (agent, effects) = tx.finish(result).await?;
            c.settle(effects).await;
            out.one("agent", &agents::json(&agent));
        }
        AgentCommand::List { tenant } => {
            let mut conn = c.db.get().await?;
            let list = agents::list(&mut conn, tenant.as_deref()).await?;
            out.many(&list.iter().map(agents::json).collect::<Vec<_>>());
        }
        AgentCommand::Available {
            agent,
            tenant,
            available,
        } => {
            let mut tx = c
                .begin(&tenant, &format!("admin:{}", ulid::Ulid::new()))
                .await?;
            let result = agents::set_available(&mut tx, &agent, available).await;
            let (agent, effects) = tx.finish(result).await?;
            c.settle(effects).await;
            out.one("agent", &agents::json(&agent));
        }
    }
    Ok(())
}

async fn keys(c: &Conversations, command: KeyCommand, out: &Printer) -> anyhow::Result<()> {
    let mut conn = c.db.get().await?;
    match command {
        KeyCommand::Create {
            tenant,
            operator,
            name,
        } => {
            let scope = match (tenant, operator) {
                (Some(tenant_id), false) => {
                    if !directory::tenant_exists(&mut conn, &tenant_id).await? {
                        anyhow::bail!("tenant {tenant_id} not found");
                    }
                    Scope::Tenant { tenant_id }
                }
                _ => Scope::Operator,
            };
            let created = api_keys::create(&mut conn, &scope, &name).await?;
            let mut shown = serde_json::to_value(&created.key)?;
            shown["token"] = json!(created.token);
            out.one("api key (the token is shown only now)", &shown);
        }
        KeyCommand::List { tenant } => {
            out.many(&rows(&api_keys::list(&mut conn, tenant.as_deref()).await?));
        }
        KeyCommand::Revoke { id } => {
            let revoked = api_keys::revoke(&mut conn, &id).await?;
            if !revoked {
                anyhow::bail!("api key {id} not found or already revoked");
            }
            out.one("revoked", &json!({ "id": id }));
        }
    }
    Ok(())
}
