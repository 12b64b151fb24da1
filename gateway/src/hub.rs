//! The hub: which socket listens on which channel, fed by one Redis pub/sub subscription.
//!
//! Broadcasts arrive in Laravel's Redis broadcaster format on `{BROADCAST_PREFIX}{channel}`:
//! `{"event": "...", "data": {...}, "socket": "<socket id to skip>" | null}`. A payload without a
//! string `event` and an object `data` is dropped and counted, never forwarded.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::protocol;

/// What a socket's writer receives.
pub type Outbox = mpsc::Sender<String>;

#[derive(Clone, Default)]
pub struct Hub {
    channels: Arc<Mutex<HashMap<String, HashMap<String, Outbox>>>>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Outbox>>> {
        // Inserts and removes only: a poisoned map is still consistent.
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self, channel: &str, socket_id: &str, outbox: Outbox) {
        self.lock()
            .entry(channel.to_owned())
            .or_default()
            .insert(socket_id.to_owned(), outbox);
    }

    pub fn unsubscribe(&self, channel: &str, socket_id: &str) {
        let mut channels = self.lock();
        if let Some(sockets) = channels.get_mut(channel) {
            sockets.remove(socket_id);
            if sockets.is_empty() {
                channels.remove(channel);
            }
        }
    }

    pub fn forget_socket(&self, socket_id: &str) {
        self.lock().retain(|_, sockets| {
            sockets.remove(socket_id);
            !sockets.is_empty()
        });
    }

    /// Delivers one broadcast to every socket on `channel` (but the one it names to skip).
    /// Returns how many sockets it reached.
    pub fn dispatch(&self, channel: &str, payload: &[u8]) -> usize {
        let Some((event, data, skip)) = parse(payload) else {
            metrics::counter!("switchyard_gateway_malformed_broadcasts_total").increment(1);
            tracing::warn!(
                channel,
                "dropped a broadcast without string `event` and object `data`"
            );
            return 0;
        };
        let frame = protocol::event(&event, channel, &data);
        let targets: Vec<Outbox> = self
            .lock()
            .get(channel)
            .map(|sockets| {
                sockets
                    .iter()
                    .filter(|(id, _)| skip.as_deref() != Some(id.as_str()))
                    .map(|(_, outbox)| outbox.clone())
                    .collect()
            })
            .unwrap_or_default();
        // A socket whose outbox is full is too slow to keep up; it misses this event rather
        // than slowing everyone else down.
        targets
            .iter()
            .filter(|outbox| outbox.try_send(frame.clone()).is_ok())
            .count()
    }
}

fn parse(payload: &[u8]) -> Option<(String, Value, Option<String>)> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    let event = value.get("event")?.as_str()?.to_owned();
    let data = value.get("data").filter(|d| d.is_object())?.clone();
    let skip = value
        .get("socket")
        .and_then(|s| s.as_str())
        .map(str::to_owned);
    Some((event, data, skip))
}
