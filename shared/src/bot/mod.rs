//! Bots: what answers a session while it is on the bot path.
//!
//! [`Bot`] is the seam: given a customer's message it returns a [`BotDecision`] — a reply to
//! send, whether the message was recognised, whether to hand the session to an agent. Two
//! implementations: [`RulesBot`], built in, matching per-inbox intents (keywords, phrases,
//! `/regex/`, button payloads) with a fallback reply; and [`HttpBot`], which asks an external
//! detect-intent service (Dialogflow-style) over HTTP, whose timeouts and errors are transient
//! failures so the job retries. [`Bots`] picks the bot of an inbox from its settings.
//!
//! A bot only decides; storing the reply, counting unrecognised messages and handing off are
//! the pipeline's (shared::conversation), so a bot can be swapped without touching them.

mod config;
mod http;
mod rules;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use config::{Bots, InboxBot, RulesFile};
pub use http::HttpBot;
pub use rules::{RulesBot, builtin_intents};

/// Button payloads that always mean "connect me to an agent", whatever the inbox's bot.
pub const HANDOFF_POSTBACKS: [&str; 5] = [
    "CONNECT_AGENT",
    "TALK_TO_AGENT",
    "HUMAN_AGENT",
    "HANDOFF",
    "AGENT",
];

/// Whether a button payload asks for an agent.
pub fn is_handoff_postback(payload: &str) -> bool {
    HANDOFF_POSTBACKS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(payload.trim()))
}

/// A customer's message, as a bot sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BotInput {
    pub tenant_id: String,
    pub inbox_id: String,
    pub session_id: String,
    pub message_id: String,
    pub text: String,
    /// The payload of a pressed button, if the message is one.
    pub postback: Option<String>,
    pub contact_name: Option<String>,
}

/// What the bot wants done.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotDecision {
    /// The intent recognised, if any.
    pub intent: Option<String>,
    /// Text to send back, if any.
    pub reply: Option<String>,
    /// Hand the session to an agent.
    pub handoff: bool,
    /// False for a fallback: counts toward the inbox's handoff-after-N rule.
    pub recognised: bool,
}

/// Why a bot could not decide.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BotError {
    /// Timeout, connection error, 5xx, 429: try the job again later.
    #[error("bot unavailable: {0}")]
    Transient(String),
    /// Misconfigured or answering nonsense: retrying will not help.
    #[error("bot failed: {0}")]
    Permanent(String),
}

/// A bot. Implementations are shared across jobs (`Arc<dyn Bot>`) and called concurrently.
pub trait Bot: Send + Sync {
    fn decide<'a>(&'a self, input: &'a BotInput) -> BoxFuture<'a, Result<BotDecision, BotError>>;

    /// Whether `decide` answers at once, without I/O (the rules bot): such a bot may run inside
    /// the transaction that stores the message, saving a second one.
    fn is_local(&self) -> bool {
        false
    }
}
