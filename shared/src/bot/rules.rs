//! The built-in rules bot: intents matched by keyword, phrase, regular expression or button
//! payload, highest priority first; a fallback reply when nothing matches.
//!
//! Keywords and phrases match whole words, case- and accent-insensitively enough for chat
//! (lowercased, punctuation ignored): "agent" matches "Agent, please!" but not "agents" or
//! "reagent". `/…/` patterns are regular expressions, matched case-insensitively.

use futures::future::BoxFuture;
use regex::Regex;

use super::{Bot, BotDecision, BotError, BotInput};
use crate::conversation::settings::IntentRule;

/// The reply when no intent matches and the inbox configured none.
pub const DEFAULT_FALLBACK: &str = "Sorry, I didn't get that. Type \"agent\" to talk to a person.";

/// The intents every inbox has until it configures its own: greet, and hand off on request.
pub fn builtin_intents() -> Vec<IntentRule> {
    let rule = |name: &str, patterns: &[&str], reply: &str, handoff, priority| IntentRule {
        name: name.to_owned(),
        patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
        reply: Some(reply.to_owned()),
        handoff,
        priority,
    };
    let mut handoff_patterns = vec![
        "agent",
        "human",
        "talk to an agent",
        "speak to someone",
        "real person",
        "representative",
    ];
    let postbacks: Vec<String> = super::HANDOFF_POSTBACKS
        .iter()
        .map(|p| format!("postback:{p}"))
        .collect();
    handoff_patterns.extend(postbacks.iter().map(String::as_str));
    vec![
        rule(
            "handoff",
            &handoff_patterns,
            "Connecting you to an agent. Someone will be with you shortly.",
            true,
            100,
        ),
        rule(
            "greeting",
            &[
                "hi",
                "hello",
                "hey",
                "good morning",
                "good afternoon",
                "olá",
                "hallo",
            ],
            "Hi! I'm the virtual assistant. Ask me anything, or type \"agent\" to talk to a person.",
            false,
            10,
        ),
        rule(
            "thanks",
            &["thanks", "thank you", "obrigado", "danke"],
            "You're welcome!",
            false,
            10,
        ),
    ]
}

enum Pattern {
    Words(Vec<String>),
    Regex(Regex),
    Postback(String),
}

struct Intent {
    rule: IntentRule,
    patterns: Vec<Pattern>,
}

/// A rules bot for one inbox.
pub struct RulesBot {
    intents: Vec<Intent>,
    fallback: String,
}

impl RulesBot {
    /// Intents are tried by descending priority (stable for equal ones). An invalid regex is
    /// an error naming the intent, so a bad configuration is caught when it is loaded.
    pub fn new(rules: Vec<IntentRule>, fallback: Option<String>) -> Result<Self, BotError> {
        let mut intents = rules
            .into_iter()
            .map(|rule| {
                let patterns = rule
                    .patterns
                    .iter()
                    .map(|p| compile(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| BotError::Permanent(format!("intent {:?}: {e}", rule.name)))?;
                Ok(Intent { rule, patterns })
            })
            .collect::<Result<Vec<_>, BotError>>()?;
        intents.sort_by_key(|i| std::cmp::Reverse(i.rule.priority));
        Ok(Self {
            intents,
            fallback: fallback.unwrap_or_else(|| DEFAULT_FALLBACK.to_owned()),
        })
    }

    /// The decision for a message (pure: no I/O).
    pub fn decide_now(&self, input: &BotInput) -> BotDecision {
        let words = normalise(&input.text);
        let hit = self.intents.iter().find(|intent| {
            intent
                .patterns
                .iter()
                .any(|p| matches(p, &words, &input.text, input.postback.as_deref()))
        });
        match hit {
            Some(intent) => BotDecision {
                intent: Some(intent.rule.name.clone()),
                reply: intent.rule.reply.clone(),
                handoff: intent.rule.handoff,
                recognised: true,
            },
            None => BotDecision {
                intent: None,
                reply: Some(self.fallback.clone()),
                handoff: false,
                recognised: false,
            },
        }
    }
}

impl Bot for RulesBot {
    fn decide<'a>(&'a self, input: &'a BotInput) -> BoxFuture<'a, Result<BotDecision, BotError>> {
        Box::pin(async move { Ok(self.decide_now(input)) })
    }

    fn is_local(&self) -> bool {
        true
    }
}

fn compile(pattern: &str) -> Result<Pattern, String> {
    if let Some(payload) = pattern.strip_prefix("postback:") {
        return Ok(Pattern::Postback(payload.trim().to_owned()));
    }
    if pattern.len() >= 2 && pattern.starts_with('/') && pattern.ends_with('/') {
        let body = &pattern[1..pattern.len() - 1];
        return Regex::new(&format!("(?i){body}"))
            .map(Pattern::Regex)
            .map_err(|e| format!("invalid regex {pattern}: {e}"));
    }
    let words = normalise(pattern);
    if words.is_empty() {
        return Err(format!("pattern {pattern:?} has no words"));
    }
    Ok(Pattern::Words(words))
}

fn matches(pattern: &Pattern, words: &[String], raw: &str, postback: Option<&str>) -> bool {
    match pattern {
        Pattern::Postback(expected) => {
            postback.is_some_and(|p| p.trim().eq_ignore_ascii_case(expected))
        }
        Pattern::Regex(re) => re.is_match(raw),
        Pattern::Words(phrase) => words.windows(phrase.len()).any(|w| w == phrase.as_slice()),
    }
}

/// Lowercased words, punctuation dropped.
fn normalise(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(text: &str, postback: Option<&str>) -> BotInput {
        BotInput {
            tenant_id: "ten".into(),
            inbox_id: "inb".into(),
            session_id: "ses".into(),
            message_id: "msg".into(),
            text: text.into(),
            postback: postback.map(str::to_owned),
            contact_name: None,
        }
    }

    fn check(
        bot: &RulesBot,
        text: &str,
        postback: Option<&str>,
        intent: Option<&str>,
        handoff: bool,
    ) {
        let decision = bot.decide_now(&input(text, postback));
        assert_eq!(decision.intent.as_deref(), intent, "{text:?}");
        assert_eq!(decision.handoff, handoff, "{text:?}");
        assert_eq!(decision.recognised, intent.is_some(), "{text:?}");
        assert!(decision.reply.is_some());
    }

    #[test]
    fn builtin_intents_greet_and_hand_off() {
        let bot = RulesBot::new(builtin_intents(), None).unwrap();
        check(
            &bot,
            "Hi, my order #1042 has not arrived yet",
            None,
            Some("greeting"),
            false,
        );
        check(
            &bot,
            "I want to talk to an agent!",
            None,
            Some("handoff"),
            true,
        );
        check(&bot, "AGENT", None, Some("handoff"), true);
        check(
            &bot,
            "Talk to an agent",
            Some("CONNECT_AGENT"),
            Some("handoff"),
            true,
        );
        check(&bot, "", Some("connect_agent"), Some("handoff"), true);
        check(&bot, "my reagents arrived", None, None, false);
        check(&bot, "where is my parcel", None, None, false);
    }

    #[test]
    fn custom_intents_regex_priority_and_fallback() {
        let rules = vec![
            IntentRule {
                name: "refund".into(),
                patterns: vec!["refund".into(), "/money\\s+back/".into()],
                reply: Some("Refunds take 5 days.".into()),
                handoff: false,
                priority: 1,
            },
            IntentRule {
                name: "angry".into(),
                patterns: vec!["/refund.*now/".into()],
                reply: None,
                handoff: true,
                priority: 5,
            },
        ];
        let bot = RulesBot::new(rules, Some("Hmm?".into())).unwrap();
        check(&bot, "I want my MONEY   back", None, Some("refund"), false);
        let angry = bot.decide_now(&input("Refund me NOW", None));
        assert_eq!(angry.intent.as_deref(), Some("angry"));
        assert!(angry.handoff && angry.reply.is_none());
        let fallback = bot.decide_now(&input("hello", None));
        assert_eq!(fallback.reply.as_deref(), Some("Hmm?"));
        assert!(!fallback.recognised);
    }

    #[test]
    fn a_bad_regex_is_refused_at_load() {
        let rules = vec![IntentRule {
            name: "broken".into(),
            patterns: vec!["/(unclosed/".into()],
            reply: None,
            handoff: false,
            priority: 0,
        }];
        assert!(
            matches!(RulesBot::new(rules, None), Err(BotError::Permanent(m)) if m.contains("broken"))
        );
    }
}
