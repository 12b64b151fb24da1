//! The per-endpoint concurrency limit: at most N attempts in flight to one subscription per
//! process. A job over the limit is not made to wait (that would hold a worker slot and delay
//! other endpoints' jobs behind it); the handler puts it back in the delayed set instead.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub struct EndpointLimiter {
    per_endpoint: usize,
    slots: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl EndpointLimiter {
    pub fn new(per_endpoint: usize) -> Self {
        Self {
            per_endpoint: per_endpoint.max(1),
            slots: Arc::default(),
        }
    }

    /// A slot for `endpoint`, or `None` when it already has `per_endpoint` attempts in flight.
    pub fn try_acquire(&self, endpoint: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            // Plain map operations cannot leave it half-updated, so a poisoned lock is usable.
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            // Forget idle endpoints so the map does not grow with every subscription ever seen.
            slots.retain(|_, s| {
                Arc::strong_count(s) > 1 || s.available_permits() < self.per_endpoint
            });
            slots
                .entry(endpoint.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_endpoint)))
                .clone()
        };
        semaphore.try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_endpoint_has_its_own_slots() {
        let limiter = EndpointLimiter::new(2);
        let a1 = limiter.try_acquire("a");
        let a2 = limiter.try_acquire("a");
        assert!(a1.is_some() && a2.is_some());
        assert!(
            limiter.try_acquire("a").is_none(),
            "third attempt to a must wait"
        );
        assert!(
            limiter.try_acquire("b").is_some(),
            "b is not held back by a"
        );
        drop(a1);
        assert!(limiter.try_acquire("a").is_some());
    }
}
