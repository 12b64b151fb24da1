//! Which names a tenant may give its event types and entities.
//!
//! A type name is two or three dotted lowercase words (`order.created`,
//! `billing.invoice.paid`) — the event log's own CHECK on `event_logs.type`, so every registered
//! type can be logged. It may not be a built-in type, nor start with a built-in entity
//! (`message.…`, `session.…`), nor with one of the platform's own words: subscribers filter on
//! those prefixes and must be able to trust them. The same reserved words are refused as the
//! entity type of a published event, so a tenant's event never lands in the timeline of one of
//! Switchyard's aggregates.

use crate::events::{EventType, types};

pub const MAX_NAME: usize = 100;
const MAX_ENTITY_ID: usize = 128;

/// Entity words that are not the first word of a built-in type but are Switchyard's anyway:
/// aggregates of the event log and the platform's own namespaces.
const RESERVED_WORDS: [&str; 6] = [
    "csat_survey",
    "contact",
    "tenant",
    "webhook",
    "switchyard",
    "event",
];

/// The reserved first words: every built-in type's entity, then [`RESERVED_WORDS`].
pub fn reserved_prefixes() -> Vec<&'static str> {
    let mut words: Vec<&'static str> = types::ALL
        .iter()
        .filter_map(|t| t.as_str().split('.').next())
        .chain(RESERVED_WORDS)
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}

fn is_word(word: &str) -> bool {
    word.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// Checks a name a tenant registers; the error says why it is refused.
pub fn check_type_name(name: &str) -> Result<(), String> {
    let words: Vec<&str> = name.split('.').collect();
    if name.len() > MAX_NAME || !(2..=3).contains(&words.len()) || !words.iter().all(|w| is_word(w))
    {
        return Err(format!(
            "must be two or three dotted lowercase words (a-z and _, each starting with a letter), \
             at most {MAX_NAME} characters, like order.created"
        ));
    }
    if EventType::parse(name).is_some() {
        return Err(format!("{name} is a built-in event type"));
    }
    if reserved_prefixes().contains(&words[0]) {
        return Err(format!(
            "{}. is reserved for Switchyard's own events",
            words[0]
        ));
    }
    Ok(())
}

/// Checks the entity a published event is about.
pub fn check_entity(entity_type: &str, id: &str) -> Result<(), String> {
    if entity_type.len() > 64 || !is_word(entity_type) {
        return Err("type must be one lowercase word (a-z and _), at most 64 characters".into());
    }
    if reserved_prefixes().contains(&entity_type) {
        return Err(format!(
            "type {entity_type} is reserved for Switchyard's own entities"
        ));
    }
    let id_ok = !id.is_empty()
        && id.len() <= MAX_ENTITY_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-:.".contains(&b));
    if !id_ok {
        return Err(format!(
            "id must be 1 to {MAX_ENTITY_ID} characters of A-Z, a-z, 0-9, _, -, : and ."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dotted_words_that_do_not_impersonate_switchyard() {
        for good in ["order.created", "billing.invoice.paid", "crm_deal.won"] {
            assert_eq!(check_type_name(good), Ok(()), "{good}");
        }
        for bad in [
            "order",
            "Order.created",
            "order.created.v.x",
            "order..created",
            "order.2created",
            "order.created2",
            "_order.created",
            "order.created-now",
            "",
        ] {
            assert!(check_type_name(bad).is_err(), "{bad} accepted");
        }
        assert!(check_type_name(&format!("order.{}", "a".repeat(MAX_NAME))).is_err());
        let built_in = check_type_name("message.ready").unwrap_err();
        assert!(built_in.contains("built-in"), "{built_in}");
        for reserved in [
            "message.custom",
            "session.tagged",
            "subscription.renewed",
            "webhook.x",
        ] {
            let why = check_type_name(reserved).unwrap_err();
            assert!(why.contains("reserved"), "{reserved}: {why}");
        }
    }

    #[test]
    fn entities_are_tenant_words_with_plain_ids() {
        assert_eq!(check_entity("order", "ord_1:2024.x-1"), Ok(()));
        assert!(check_entity("session", "ses_1").is_err());
        assert!(check_entity("Order", "1").is_err());
        assert!(check_entity("order", "").is_err());
        assert!(check_entity("order", "a b").is_err());
        assert!(check_entity("order", &"a".repeat(129)).is_err());
    }
}
