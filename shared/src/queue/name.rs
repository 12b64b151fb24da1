//! Queue names: validated once, so a bad `--queue` flag fails at boot and every key built from a
//! name is safe inside a Redis hash tag.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A queue name: 1–64 characters of `[a-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueName(String);

/// The queues the product defines, in the order `worker` serves them by default.
pub const KNOWN_QUEUES: [&str; 6] = [
    "whatsapp-messages",
    "facebook",
    "email",
    "widget",
    "deliveries",
    "webhooks",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid queue name {0:?}: use 1-64 characters of a-z, 0-9, '-' and '_'")]
pub struct InvalidQueueName(pub String);

impl QueueName {
    pub fn new(name: &str) -> Result<Self, InvalidQueueName> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidQueueName(name.to_owned()))
        }
    }

    /// Every queue of [`KNOWN_QUEUES`].
    pub fn known() -> Vec<Self> {
        KNOWN_QUEUES.iter().map(|q| Self(q.to_string())).collect()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for QueueName {
    type Err = InvalidQueueName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for QueueName {
    type Error = InvalidQueueName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<QueueName> for String {
    fn from(q: QueueName) -> Self {
        q.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_product_queues_and_rejects_key_breaking_names() {
        for q in KNOWN_QUEUES {
            assert!(QueueName::new(q).is_ok(), "{q}");
        }
        for bad in ["", "Upper", "a}b", "a:b", "with space", &"x".repeat(65)] {
            assert!(QueueName::new(bad).is_err(), "{bad:?}");
        }
    }
}
