//! The one event envelope (DESIGN.md §4, seed 004): `id`, `type`, `version`, `source`,
//! `timestamp` (ISO 8601, UTC, milliseconds), `tenant_id`, `correlation_id` and `data`.
//!
//! The same JSON is what the event log stores (column by column), what a broadcast carries as
//! its `data`, and what outbound webhook subscriptions will receive.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The envelope schema's version; bumped only for a breaking change of the envelope itself.
pub const ENVELOPE_VERSION: &str = "1.0";

/// An event type name, `entity.action` or `domain.entity.action`: lowercase words and `_`,
/// two or three of them separated by dots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventType(&'static str);

impl EventType {
    /// For the constants of [`super::types`]; their well-formedness is a unit test.
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    /// The known type named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        let parts: Vec<&str> = name.split('.').collect();
        let well_formed = (2..=3).contains(&parts.len())
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        if !well_formed {
            return None;
        }
        super::types::ALL.into_iter().find(|t| t.0 == name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// One event as it travels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: String,
    pub source: String,
    pub timestamp: String,
    pub tenant_id: String,
    pub correlation_id: String,
    pub data: serde_json::Value,
}

impl Envelope {
    /// A new event with a fresh id (`evt_` + ULID) stamped now.
    pub fn new(
        event_type: EventType,
        source: &str,
        tenant_id: &str,
        correlation_id: &str,
        data: serde_json::Value,
    ) -> Self {
        Self {
            id: crate::inboxes::new_id("evt"),
            event_type: event_type.as_str().to_owned(),
            version: ENVELOPE_VERSION.to_owned(),
            source: source.to_owned(),
            timestamp: iso8601(Utc::now()),
            tenant_id: tenant_id.to_owned(),
            correlation_id: correlation_id.to_owned(),
            data,
        }
    }
}

/// `2026-11-23T18:54:30.123Z`.
pub fn iso8601(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_designed_fields() {
        let e = Envelope::new(
            super::super::types::MESSAGE_READY,
            "switchyard.worker",
            "ten_1",
            "corr-1",
            serde_json::json!({"message": {"id": "msg_1"}}),
        );
        let json = serde_json::to_value(&e).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "correlation_id",
                "data",
                "id",
                "source",
                "tenant_id",
                "timestamp",
                "type",
                "version"
            ]
        );
        assert_eq!(json["type"], "message.ready");
        assert!(e.id.starts_with("evt_"));
        assert!(DateTime::parse_from_rfc3339(&e.timestamp).is_ok());
        assert!(e.timestamp.ends_with('Z'));
    }

    #[test]
    fn only_known_well_formed_types_parse() {
        assert!(EventType::parse("message.ready").is_some());
        assert!(EventType::parse("message.unknown").is_none());
        assert!(EventType::parse("Message.ready").is_none());
        assert!(EventType::parse("message").is_none());
        assert!(EventType::parse("a.b.c.d").is_none());
    }
}
