//! One shared multiplexed connection per [`Queues`](super::Queues) for short commands.
//!
//! Why not a pool: deadpool-redis PINGs every connection it hands out, a second round trip for
//! every short command, and a multiplexed connection already pipelines concurrent callers.
//! Why not `redis::aio::ConnectionManager`: its reconnect retries (with backoff) hold every
//! caller for seconds while Redis is down, and without them it hands a reconnect attempt that
//! failed during an outage to the next caller even once Redis is back. Here a caller that finds
//! no live connection dials once itself, bounded by [`CONNECT_TIMEOUT`]; callers that queued
//! behind that same dial share its outcome instead of dialling one after another.
//!
//! Blocking commands (XREADGROUP BLOCK) and per-connection state (WATCH, SUBSCRIBE, SELECT)
//! must not use this connection: a blocked read would stall every other caller on it.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{
    AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, MultiplexedConnection},
};

/// A dial that takes longer fails, so a caller answers "Redis unavailable" instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Every short command answers within this or fails. Long enough for a queued-up pipeline of
/// concurrent callers on one connection under load; short enough for ingress to answer 503.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared connection's owner: hands out clones and replaces a connection that died.
pub(crate) struct SharedConnection {
    client: redis::Client,
    config: AsyncConnectionConfig,
    live: RwLock<Option<Live>>,
    /// Dials started so far; a caller that waited for someone else's dial compares it.
    dials: AtomicU64,
    /// Held while dialling, with the error of the last dial that failed.
    dialling: tokio::sync::Mutex<Option<RedisError>>,
}

#[derive(Clone)]
struct Live {
    /// Which dial made this connection, so a failure on an old clone never drops a newer one.
    dial: u64,
    conn: MultiplexedConnection,
}

impl SharedConnection {
    /// Does not dial: a process starts while Redis is down and reports it on readiness.
    pub(crate) fn new(client: redis::Client) -> Self {
        Self {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT)),
            live: RwLock::new(None),
            dials: AtomicU64::new(0),
            dialling: tokio::sync::Mutex::new(None),
        }
    }

    /// A clone of the live connection, dialling first if there is none.
    pub(crate) async fn get(self: &Arc<Self>) -> RedisResult<RedisConn> {
        if let Some(live) = self.current() {
            return Ok(self.hand_out(live));
        }
        let dials_seen = self.dials.load(Ordering::Acquire);
        let mut last_error = self.dialling.lock().await;
        if let Some(live) = self.current() {
            return Ok(self.hand_out(live));
        }
        if self.dials.load(Ordering::Acquire) != dials_seen
            && let Some(error) = last_error.as_ref()
        {
            // Someone dialled and failed while this caller waited: share that answer.
            return Err(error.clone());
        }
        let dial = self.dials.fetch_add(1, Ordering::AcqRel) + 1;
        match self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
        {
            Ok(conn) => {
                let live = Live { dial, conn };
                *self.live.write().expect("lock") = Some(live.clone());
                *last_error = None;
                metrics::counter!("switchyard_redis_connects_total").increment(1);
                Ok(self.hand_out(live))
            }
            Err(error) => {
                tracing::debug!(%error, "redis dial failed");
                *last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    fn current(&self) -> Option<Live> {
        self.live.read().expect("lock").clone()
    }

    fn hand_out(self: &Arc<Self>, live: Live) -> RedisConn {
        RedisConn {
            conn: live.conn,
            dial: live.dial,
            shared: Arc::clone(self),
        }
    }

    /// Forgets the connection made by `dial` (if it is still the live one): the next caller dials.
    fn drop_dead(&self, dial: u64, error: &RedisError) {
        let mut live = self.live.write().expect("lock");
        if live.as_ref().is_some_and(|l| l.dial == dial) {
            *live = None;
            tracing::warn!(%error, "redis connection lost; the next command reconnects");
        }
    }
}

/// A clone of the shared connection. Commands on it that find the connection dead mark it so,
/// and the next [`SharedConnection::get`] dials a new one.
pub(crate) struct RedisConn {
    conn: MultiplexedConnection,
    dial: u64,
    shared: Arc<SharedConnection>,
}

impl RedisConn {
    fn notice<T>(&self, result: &RedisResult<T>) {
        // Timeouts are not unrecoverable: a slow Redis keeps its connection.
        if let Err(error) = result
            && error.is_unrecoverable_error()
        {
            self.shared.drop_dead(self.dial, error);
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.conn.send_packed_command(cmd).await;
            self.notice(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self
                .conn
                .send_packed_commands(pipeline, offset, count)
                .await;
            self.notice(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

#[cfg(test)]
mod tests;
