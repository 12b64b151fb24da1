//! Per-inbox pipeline settings (`inbox_settings`) and the rules bot's intents (`bot_intents`).
//! An inbox without a settings row uses the defaults: the rules bot, handoff after three
//! unrecognised messages, the built-in fallback reply and CSAT question.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use super::ConversationError;
use crate::{
    db::schema::{bot_intents, inbox_settings},
    inboxes::new_id,
};

/// Which bot answers an inbox's sessions on the bot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotKind {
    Rules,
    Http,
    Off,
}

impl BotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rules => "rules",
            Self::Http => "http",
            Self::Off => "off",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ConversationError> {
        match text {
            "rules" => Ok(Self::Rules),
            "http" => Ok(Self::Http),
            "off" => Ok(Self::Off),
            _ => Err(ConversationError::invalid(
                "bot",
                "must be one of rules, http, off",
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InboxSettings {
    pub inbox_id: String,
    pub bot: BotKind,
    pub bot_url: Option<String>,
    pub bot_timeout_ms: i32,
    /// Unrecognised messages in a row before a handoff (0: never).
    pub handoff_after: i32,
    pub fallback_reply: Option<String>,
    pub csat_prompt: Option<String>,
}

impl InboxSettings {
    pub fn defaults(inbox_id: &str) -> Self {
        Self {
            inbox_id: inbox_id.to_owned(),
            bot: BotKind::Rules,
            bot_url: None,
            bot_timeout_ms: 3000,
            handoff_after: 3,
            fallback_reply: None,
            csat_prompt: None,
        }
    }
}

/// name, patterns, reply, handoff, priority.
type IntentRow = (String, Vec<String>, Option<String>, bool, i32);

type SettingsRow = (
    String,
    String,
    Option<String>,
    i32,
    i32,
    Option<String>,
    Option<String>,
);

/// The inbox's settings, or the defaults.
pub async fn load(
    conn: &mut AsyncPgConnection,
    inbox_id: &str,
) -> Result<InboxSettings, ConversationError> {
    let row: Option<SettingsRow> = inbox_settings::table
        .find(inbox_id)
        .select((
            inbox_settings::inbox_id,
            inbox_settings::bot,
            inbox_settings::bot_url,
            inbox_settings::bot_timeout_ms,
            inbox_settings::handoff_after,
            inbox_settings::fallback_reply,
            inbox_settings::csat_prompt,
        ))
        .first(conn)
        .await
        .optional()?;
    let Some((inbox_id, bot, bot_url, bot_timeout_ms, handoff_after, fallback_reply, csat_prompt)) =
        row
    else {
        return Ok(InboxSettings::defaults(inbox_id));
    };
    Ok(InboxSettings {
        inbox_id,
        bot: BotKind::parse(&bot)?,
        bot_url,
        bot_timeout_ms,
        handoff_after,
        fallback_reply,
        csat_prompt,
    })
}

/// Writes the inbox's settings (insert or replace).
pub async fn save(
    conn: &mut AsyncPgConnection,
    settings: &InboxSettings,
) -> Result<(), ConversationError> {
    if settings.bot == BotKind::Http
        && !settings
            .bot_url
            .as_deref()
            .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"))
    {
        return Err(ConversationError::invalid(
            "bot_url",
            "must be an http(s) URL for the http bot",
        ));
    }
    let values = (
        inbox_settings::inbox_id.eq(&settings.inbox_id),
        inbox_settings::bot.eq(settings.bot.as_str()),
        inbox_settings::bot_url.eq(&settings.bot_url),
        inbox_settings::bot_timeout_ms.eq(settings.bot_timeout_ms),
        inbox_settings::handoff_after.eq(settings.handoff_after),
        inbox_settings::fallback_reply.eq(&settings.fallback_reply),
        inbox_settings::csat_prompt.eq(&settings.csat_prompt),
    );
    diesel::insert_into(inbox_settings::table)
        .values(values)
        .on_conflict(inbox_settings::inbox_id)
        .do_update()
        .set((values, inbox_settings::updated_at.eq(diesel::dsl::now)))
        .execute(conn)
        .await?;
    Ok(())
}

/// One rules-bot intent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRule {
    pub name: String,
    /// Keywords or phrases (case-insensitive, whole words), `/regex/`, or `postback:PAYLOAD`.
    pub patterns: Vec<String>,
    #[serde(default)]
    pub reply: Option<String>,
    #[serde(default)]
    pub handoff: bool,
    /// Higher wins when several intents match.
    #[serde(default)]
    pub priority: i32,
}

/// The inbox's intents from the database, highest priority first.
pub async fn intents(
    conn: &mut AsyncPgConnection,
    inbox_id: &str,
) -> Result<Vec<IntentRule>, ConversationError> {
    let rows: Vec<IntentRow> = bot_intents::table
        .filter(bot_intents::inbox_id.eq(inbox_id))
        .order((bot_intents::priority.desc(), bot_intents::created_at.asc()))
        .select((
            bot_intents::name,
            bot_intents::patterns,
            bot_intents::reply,
            bot_intents::handoff,
            bot_intents::priority,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(name, patterns, reply, handoff, priority)| IntentRule {
            name,
            patterns,
            reply,
            handoff,
            priority,
        })
        .collect())
}

/// Adds or replaces the inbox's intent of the same name.
pub async fn save_intent(
    conn: &mut AsyncPgConnection,
    inbox_id: &str,
    rule: &IntentRule,
) -> Result<(), ConversationError> {
    if rule.name.trim().is_empty() || rule.patterns.is_empty() {
        return Err(ConversationError::invalid(
            "intent",
            "needs a name and at least one pattern",
        ));
    }
    let values = (
        bot_intents::patterns.eq(&rule.patterns),
        bot_intents::reply.eq(&rule.reply),
        bot_intents::handoff.eq(rule.handoff),
        bot_intents::priority.eq(rule.priority),
    );
    diesel::insert_into(bot_intents::table)
        .values((
            bot_intents::id.eq(new_id("int")),
            bot_intents::inbox_id.eq(inbox_id),
            bot_intents::name.eq(rule.name.trim()),
            values,
        ))
        .on_conflict((bot_intents::inbox_id, bot_intents::name))
        .do_update()
        .set(values)
        .execute(conn)
        .await?;
    Ok(())
}
