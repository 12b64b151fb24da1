//! Redis key names, the only place they are spelled (ARCHITECTURE.md invariant).
//!
//! Every key of a queue carries the queue in a hash tag, `{prefix}:{<queue>}:…`, so all of one
//! queue's keys live in one Redis Cluster slot and its Lua scripts may touch several of them.

use super::QueueName;

/// The consumer group every worker process joins.
pub const GROUP: &str = "workers";

/// The keys of one queue.
#[derive(Clone, Debug)]
pub struct QueueKeys {
    pub stream: String,
    pub delayed: String,
    pub stats: String,
    dedup_prefix: String,
}

impl QueueKeys {
    pub fn new(prefix: &str, queue: &QueueName) -> Self {
        let base = format!("{prefix}:{{{queue}}}");
        Self {
            stream: Self::stream_of(prefix, queue),
            delayed: format!("{base}:delayed"),
            stats: format!("{base}:stats"),
            dedup_prefix: Self::dedup_of(prefix, queue, ""),
        }
    }

    pub fn dedup(&self, key: &str) -> String {
        format!("{}{key}", self.dedup_prefix)
    }

    /// [`QueueKeys::stream`] alone, for the enqueue path, which needs no other key.
    pub fn stream_of(prefix: &str, queue: &QueueName) -> String {
        format!("{prefix}:{{{queue}}}:stream")
    }

    /// [`QueueKeys::dedup`] alone.
    pub fn dedup_of(prefix: &str, queue: &QueueName, key: &str) -> String {
        format!("{prefix}:{{{queue}}}:dedup:{key}")
    }
}

/// The lease a process holds while it runs periodic work that must run once fleet-wide.
pub fn lease(prefix: &str, name: &str) -> String {
    format!("{prefix}:lease:{name}")
}

/// The last occurrence (epoch ms) of a periodic job that some scheduler claimed.
pub fn periodic(prefix: &str, job: &str) -> String {
    format!("{prefix}:periodic:{job}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag_per_queue() {
        let keys = QueueKeys::new("sy", &QueueName::new("whatsapp-messages").unwrap());
        assert_eq!(keys.stream, "sy:{whatsapp-messages}:stream");
        assert_eq!(keys.delayed, "sy:{whatsapp-messages}:delayed");
        assert_eq!(keys.stats, "sy:{whatsapp-messages}:stats");
        assert_eq!(
            keys.dedup("wamid.1"),
            "sy:{whatsapp-messages}:dedup:wamid.1"
        );
        let queue = QueueName::new("whatsapp-messages").unwrap();
        assert_eq!(QueueKeys::stream_of("sy", &queue), keys.stream);
        assert_eq!(
            QueueKeys::dedup_of("sy", &queue, "wamid.1"),
            keys.dedup("wamid.1")
        );
    }
}
