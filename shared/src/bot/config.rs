//! [`Bots`]: the bot of each inbox, from its settings in the database, an optional rules file
//! (`BOT_RULES_FILE`), and the built-in defaults — briefly cached so a busy inbox does not
//! read its rules for every message.
//!
//! Intents come from the first of: the inbox's `bot_intents` rows, the file's entry for the
//! inbox, the file's defaults, the built-in intents. The file is JSON:
//! `{"fallback_reply": "…", "intents": [IntentRule…], "inboxes": {"inb_…": {"fallback_reply",
//! "intents"}}}`, every field optional.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Deserialize;

use super::{Bot, BotError, HttpBot, RulesBot, builtin_intents};
use crate::{
    conversation::{
        ConversationError,
        settings::{self, BotKind, InboxSettings, IntentRule},
    },
    db::DbPool,
};

/// The rules of a `BOT_RULES_FILE`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct RulesFile {
    #[serde(default)]
    pub fallback_reply: Option<String>,
    #[serde(default)]
    pub intents: Vec<IntentRule>,
    #[serde(default)]
    pub inboxes: HashMap<String, InboxRules>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct InboxRules {
    #[serde(default)]
    pub fallback_reply: Option<String>,
    #[serde(default)]
    pub intents: Vec<IntentRule>,
}

impl RulesFile {
    /// Reads and checks the file (an invalid regex fails here, at boot).
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("BOT_RULES_FILE {}: {e}", path.display()))?;
        let file: Self = serde_json::from_str(&text)
            .map_err(|e| format!("BOT_RULES_FILE {}: {e}", path.display()))?;
        RulesBot::new(file.intents.clone(), None).map_err(|e| e.to_string())?;
        for rules in file.inboxes.values() {
            RulesBot::new(rules.intents.clone(), None).map_err(|e| e.to_string())?;
        }
        Ok(file)
    }
}

/// An inbox's bot and the settings that go with it.
#[derive(Clone)]
pub struct InboxBot {
    pub settings: InboxSettings,
    /// `None` when the inbox's bot is off.
    pub bot: Option<Arc<dyn Bot>>,
}

impl InboxBot {
    /// Whether the decision needs no I/O (the rules bot, or no bot at all).
    pub fn is_local(&self) -> bool {
        self.bot.as_ref().is_none_or(|b| b.is_local())
    }
}

struct Cached {
    at: Instant,
    bot: InboxBot,
}

/// Resolves inboxes to their bots; cheap to clone.
#[derive(Clone)]
pub struct Bots {
    db: DbPool,
    file: Arc<RulesFile>,
    client: reqwest::Client,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl Bots {
    /// `ttl`: how long an inbox's bot is reused before its settings are read again.
    pub fn new(db: DbPool, file: RulesFile, ttl: Duration) -> Self {
        Self {
            db,
            file: Arc::new(file),
            client: reqwest::Client::new(),
            ttl,
            cache: Arc::default(),
        }
    }

    /// From the environment: `BOT_RULES_FILE` (optional) and `BOT_CACHE_SECS` (default 5).
    pub fn from_env(db: DbPool) -> Result<Self, String> {
        let file = match std::env::var("BOT_RULES_FILE")
            .ok()
            .filter(|p| !p.is_empty())
        {
            Some(path) => RulesFile::load(std::path::Path::new(&path))?,
            None => RulesFile::default(),
        };
        let ttl = crate::config::env_parse("BOT_CACHE_SECS", 5u64).map_err(|e| e.to_string())?;
        Ok(Self::new(db, file, Duration::from_secs(ttl)))
    }

    /// The bot of `inbox_id`.
    pub async fn for_inbox(&self, inbox_id: &str) -> Result<InboxBot, ConversationError> {
        if let Some(hit) = self.cached(inbox_id) {
            return Ok(hit);
        }
        let mut conn = self.db.get().await?;
        let settings = settings::load(&mut conn, inbox_id).await?;
        let intents = settings::intents(&mut conn, inbox_id).await?;
        drop(conn);
        let bot = self.build(settings, intents)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                inbox_id.to_owned(),
                Cached {
                    at: Instant::now(),
                    bot: bot.clone(),
                },
            );
        }
        Ok(bot)
    }

    fn cached(&self, inbox_id: &str) -> Option<InboxBot> {
        // A poisoned lock only means another thread panicked mid-insert: skip the cache.
        let cache = self.cache.lock().ok()?;
        cache
            .get(inbox_id)
            .filter(|c| c.at.elapsed() < self.ttl)
            .map(|c| c.bot.clone())
    }

    fn build(
        &self,
        settings: InboxSettings,
        db_intents: Vec<IntentRule>,
    ) -> Result<InboxBot, ConversationError> {
        let bot: Option<Arc<dyn Bot>> = match settings.bot {
            BotKind::Off => None,
            BotKind::Http => {
                let url = settings.bot_url.clone().unwrap_or_default();
                let timeout = Duration::from_millis(settings.bot_timeout_ms.max(1) as u64);
                Some(Arc::new(HttpBot::new(self.client.clone(), url, timeout)))
            }
            BotKind::Rules => {
                let (intents, fallback) = self.rules_for(&settings, db_intents);
                let rules = RulesBot::new(intents, fallback).map_err(|e| match e {
                    BotError::Permanent(m) | BotError::Transient(m) => {
                        ConversationError::invalid("bot_intents", m)
                    }
                })?;
                Some(Arc::new(rules))
            }
        };
        Ok(InboxBot { settings, bot })
    }

    fn rules_for(
        &self,
        settings: &InboxSettings,
        db_intents: Vec<IntentRule>,
    ) -> (Vec<IntentRule>, Option<String>) {
        let file_inbox = self.file.inboxes.get(&settings.inbox_id);
        let fallback = settings
            .fallback_reply
            .clone()
            .or_else(|| file_inbox.and_then(|f| f.fallback_reply.clone()))
            .or_else(|| self.file.fallback_reply.clone());
        let intents = if !db_intents.is_empty() {
            db_intents
        } else if let Some(rules) = file_inbox.filter(|f| !f.intents.is_empty()) {
            rules.intents.clone()
        } else if !self.file.intents.is_empty() {
            self.file.intents.clone()
        } else {
            builtin_intents()
        };
        (intents, fallback)
    }
}
