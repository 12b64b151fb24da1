//! Inboxes read from Postgres, kept in memory for a short TTL so a webhook costs no database
//! round trip in the steady state.
//!
//! Misses are cached too (an unknown inbox stays unknown for one TTL), so a flood of requests for
//! made-up inboxes cannot hammer Postgres. When Postgres is down an expired entry is still served
//! ("stale if error"): routing facts rarely change, and refusing every webhook because the
//! database blinked would be worse. The map is behind a std `Mutex`: it is held only for a map
//! operation, never across an `.await`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use shared::{
    db::{DbError, DbPool},
    inboxes::{self, Inbox, InboxLookup},
};

/// Entries beyond this are evicted (expired ones first), bounding memory under id floods.
const MAX_ENTRIES: usize = 50_000;

pub struct InboxCache {
    pool: DbPool,
    ttl: Duration,
    entries: Mutex<HashMap<InboxLookup, Entry>>,
}

#[derive(Clone)]
struct Entry {
    inbox: Option<Arc<Inbox>>,
    fetched: Instant,
}

impl InboxCache {
    pub fn new(pool: DbPool, ttl: Duration) -> Self {
        Self {
            pool,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The enabled inbox `lookup` names, from memory when fresh, else from Postgres.
    pub async fn get(&self, lookup: InboxLookup) -> Result<Option<Arc<Inbox>>, DbError> {
        let cached = self.cached(&lookup);
        if let Some(entry) = &cached
            && entry.fetched.elapsed() < self.ttl
        {
            return Ok(entry.inbox.clone());
        }
        match inboxes::find(&self.pool, &lookup).await {
            Ok(found) => {
                let inbox = found.map(Arc::new);
                self.store(lookup, inbox.clone());
                Ok(inbox)
            }
            Err(error) => match cached {
                Some(stale) => {
                    tracing::warn!(error = %error, "postgres unavailable; serving a stale inbox entry");
                    Ok(stale.inbox)
                }
                None => Err(error),
            },
        }
    }

    fn cached(&self, lookup: &InboxLookup) -> Option<Entry> {
        self.lock().get(lookup).cloned()
    }

    fn store(&self, lookup: InboxLookup, inbox: Option<Arc<Inbox>>) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, e| e.fetched.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            lookup,
            Entry {
                inbox,
                fetched: Instant::now(),
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InboxLookup, Entry>> {
        // A panic while holding the lock leaves a map that is still consistent: recover it.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
