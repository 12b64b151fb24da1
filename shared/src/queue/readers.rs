//! Dedicated connections for blocking stream reads (XREADGROUP BLOCK), from a deadpool-redis
//! pool.
//!
//! A blocking read must not share the multiplexed connection of short commands (it would stall
//! every caller behind it), and its response timeout must outlast BLOCK (DESIGN.md "Known traps").
//! Each worker's reader holds one of these for as long as it works; after an error it detaches
//! the connection ([`discard`]) and checks out another. The pool's health check (a PING on
//! checkout) costs one round trip per (re)connect of a reader, not per command — which is why
//! short commands do not come from a pool (see [`super::connection`]).

use std::time::Duration;

use deadpool_redis::{Manager, Pool, PoolConfig, Runtime, Timeouts};
use redis::AsyncConnectionConfig;

use super::QueueError;

/// The longest BLOCK a reader may use: its connection answers within this plus
/// [`RESPONSE_MARGIN`].
pub const MAX_BLOCK: Duration = Duration::from_secs(60);
const RESPONSE_MARGIN: Duration = Duration::from_secs(5);
/// Readers one process can hold at once (one per queue it consumes, with room to spare).
const MAX_READERS: usize = 64;

/// One reader's connection; derefs to the multiplexed connection.
pub type ReaderConn = deadpool_redis::Connection;

pub(crate) fn pool(redis_url: &str) -> Result<Pool, QueueError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(MAX_BLOCK + RESPONSE_MARGIN));
    let manager = Manager::new_with_config(redis_url, config)?;
    Pool::builder(manager)
        .config(PoolConfig {
            max_size: MAX_READERS,
            timeouts: Timeouts {
                wait: Some(Duration::from_secs(2)),
                create: Some(Duration::from_secs(3)),
                recycle: Some(Duration::from_secs(2)),
            },
            ..PoolConfig::default()
        })
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| invalid("cannot build the readers' pool", e.to_string()))
}

/// A connection for reads that block up to `block`.
pub(crate) async fn checkout(pool: &Pool, block: Duration) -> Result<ReaderConn, QueueError> {
    if block > MAX_BLOCK {
        return Err(invalid(
            "block is too long",
            format!("{block:?} > {MAX_BLOCK:?}"),
        ));
    }
    pool.get().await.map_err(|e| match e {
        deadpool_redis::PoolError::Backend(e) => QueueError::Redis(e),
        other => QueueError::Redis(redis::RedisError::from((
            redis::ErrorKind::Io,
            "no reader connection",
            other.to_string(),
        ))),
    })
}

/// Drops a reader connection that failed instead of returning it to the pool.
pub fn discard(conn: ReaderConn) {
    drop(deadpool_redis::Connection::take(conn));
}

fn invalid(what: &'static str, detail: String) -> QueueError {
    QueueError::Redis(redis::RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        what,
        detail,
    )))
}
