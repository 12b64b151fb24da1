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

/// `text` with every U+0000 written as U+FFFD: Postgres stores no U+0000 in text or JSONB, and
/// a value that can never be stored fails its job on every attempt.
pub fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
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

/// `query`, kept prepared on its connection although diesel would not keep it (it never keeps an
/// UPDATE, a `sql_query` or a query with a `dsl::sql` fragment, since such a query's SQL may
/// differ between calls of the same Rust type). Safe for any query: the prepared statement is
/// keyed by the SQL text and the bind types, not by the type, so a different text is a
/// different statement. Use it for hot statements of a fixed shape — each distinct text stays
/// prepared for the connection's life.
pub fn keep_prepared<Q>(query: Q) -> KeepPrepared<Q> {
    KeepPrepared(query)
}

/// See [`keep_prepared`].
#[derive(Debug, Clone)]
pub struct KeepPrepared<Q>(Q);

impl<Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>>
    diesel::query_builder::QueryFragment<diesel::pg::Pg> for KeepPrepared<Q>
{
    fn walk_ast<'b>(
        &'b self,
        pass: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &diesel::pg::Pg) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

/// Not a static id: diesel keys the statement by its SQL text.
impl<Q> diesel::query_builder::QueryId for KeepPrepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for KeepPrepared<Q> {
    type SqlType = Q::SqlType;
}
