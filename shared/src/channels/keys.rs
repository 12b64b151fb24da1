//! Redis key names of the channels module, spelled in this one place.
//!
//! They live under the process's key prefix like the queue's keys, but outside any queue's hash
//! tag: each script here touches a single key, so no two keys need to share a Cluster slot. (The
//! lead may fold these builders into `shared::queue::keys`, the fleet's one key module.)

/// The token bucket of one inbox.
pub fn bucket(prefix: &str, inbox_id: &str) -> String {
    format!("{prefix}:channels:{inbox_id}:bucket")
}

/// A hold on one recipient of one inbox (pair rate limit).
pub fn recipient_hold(prefix: &str, inbox_id: &str, recipient: &str) -> String {
    format!("{prefix}:channels:{inbox_id}:hold:{recipient}")
}

/// Why an inbox's deliveries are paused (present only while they are).
pub fn paused(prefix: &str, inbox_id: &str) -> String {
    format!("{prefix}:channels:{inbox_id}:paused")
}

/// What is known of one outbound message's send: in flight since, or sent with a provider id.
pub fn sent(prefix: &str, message_id: &str) -> String {
    format!("{prefix}:channels:sent:{message_id}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_prefixed() {
        assert_eq!(super::bucket("sy", "inb_1"), "sy:channels:inb_1:bucket");
        assert_eq!(
            super::recipient_hold("sy", "inb_1", "4915"),
            "sy:channels:inb_1:hold:4915"
        );
        assert_eq!(super::sent("sy", "msg_1"), "sy:channels:sent:msg_1");
    }
}
