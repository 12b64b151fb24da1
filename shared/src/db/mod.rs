//! Postgres access: an async diesel connection pool, the embedded migrations and the schema.
//!
//! Every process shares this module so that a test's database is built exactly the way
//! `worker migrate` builds production's.

pub mod schema;

use diesel_async::{
    AsyncPgConnection,
    pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod, deadpool},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub type DbPool = deadpool::Pool<AsyncPgConnection>;
pub type DbConn = deadpool::Object<AsyncPgConnection>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool: {0}")]
    Pool(#[from] deadpool::PoolError),
    #[error("database query: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection: {0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("migration: {0}")]
    Migration(String),
}

/// A pool that connects lazily, so processes start while Postgres is still coming up.
///
/// Checkouts are not pinged: diesel-async's default (`Verified`) sends a `SELECT 1` before every
/// checkout — a round trip, two context switches and a statement for Postgres, twice per
/// pipeline job. `Fast` still discards a connection whose socket closed (Postgres restarted) or
/// whose transaction broke; one that died unnoticed fails its first statement, which is a
/// transient error (the job is retried) and marks it closed for the next checkout.
pub fn pool(database_url: &str, max_size: usize) -> Result<DbPool, DbError> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    deadpool::Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(std::time::Duration::from_secs(5)))
        .create_timeout(Some(std::time::Duration::from_secs(5)))
        .runtime(::deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Migration(format!("cannot build pool: {e}")))
}

/// Applies every pending migration; returns the versions applied.
pub async fn migrate(database_url: &str) -> Result<Vec<String>, DbError> {
    use diesel_async::AsyncConnection;
    let conn = AsyncPgConnection::establish(database_url).await?;
    // The harness wraps diesel's sync migration API with `block_in_place`: it needs the
    // multi-threaded runtime, which every binary and test here uses.
    let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
    harness
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(|v| v.to_string()).collect())
        .map_err(|e| DbError::Migration(e.to_string()))
}
