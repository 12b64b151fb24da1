//! Bounded memory for streams (DESIGN.md §3, invariant 7): trim entries every consumer group has
//! acknowledged, never one that is in flight or unread.
//!
//! Settling already XDELs each entry, so in steady state there is little to trim; this is the
//! safety net for entries acked without a delete (another producer's consumers, a crash between
//! XACK and XDEL in an older version, manual XACKs) and it frees the radix-tree nodes that XDEL
//! only marks. MAXLEN trimming would drop unacked entries, so only MINID, computed inside one Lua
//! script (`lua/trim_acked.lua`) from each group's oldest pending id and last-delivered id.

use std::sync::LazyLock;

use redis::Script;

use super::{QueueError, QueueName, Queues};

static TRIM_ACKED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/trim_acked.lua")));

/// What one trim did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Trimmed {
    /// Entries removed.
    pub entries: u64,
    /// The MINID used; `None` when the stream or its groups do not exist yet.
    pub min_id: Option<String>,
}

impl Queues {
    /// Trims the queue's stream below the oldest entry any group still needs.
    pub async fn trim_acked(&self, queue: &QueueName) -> Result<Trimmed, QueueError> {
        let keys = self.keys(queue);
        let mut conn = self.conn().await?;
        let (entries, min_id): (u64, String) =
            TRIM_ACKED.key(&keys.stream).invoke_async(&mut conn).await?;
        Ok(Trimmed {
            entries,
            min_id: (!min_id.is_empty()).then_some(min_id),
        })
    }
}
