//! Test support (feature `testkit`): a fresh Postgres database with migrations applied and a
//! random Redis key prefix per test, both removed when dropped. Tests use the real stores.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::{db, queue::Queues};

mod private_redis;
pub use private_redis::PrivateRedis;

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A unique name fragment: lowercase, safe in database names and key prefixes.
pub fn unique(label: &str) -> String {
    format!("{label}_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A migrated database of its own, dropped (forcefully) with this value.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: db::DbPool,
}

impl TestDb {
    pub async fn new() -> Self {
        let name = unique("sy_test");
        let mut admin = AsyncPgConnection::establish(&admin_url())
            .await
            .expect("postgres reachable for tests");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let base = admin_url();
        let url = format!(
            "{}/{name}",
            &base[..base.rfind('/').expect("admin url has a path")]
        );
        db::migrate(&url).await.expect("migrations apply");
        let pool = db::pool(&url, 8).expect("pool");
        Self { name, url, pool }
    }

    /// An outage of this database, as its clients see one: new connections are refused and
    /// every open one is terminated. Other tests' databases are untouched.
    pub async fn refuse_connections(&self) {
        admin_execute(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            self.name
        ))
        .await;
        admin_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            self.name
        ))
        .await;
    }

    /// Ends the outage of [`TestDb::refuse_connections`].
    pub async fn accept_connections(&self) {
        admin_execute(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
            self.name
        ))
        .await;
    }
}

async fn admin_execute(sql: &str) {
    let mut admin = AsyncPgConnection::establish(&admin_url())
        .await
        .expect("postgres reachable for tests");
    diesel::sql_query(sql)
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any async context guarantee: use a short-lived runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = AsyncPgConnection::establish(&admin_url()).await.ok()?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A key prefix of its own on the shared test Redis; its keys are deleted with this value.
pub struct TestRedis {
    pub prefix: String,
    pub queues: Queues,
}

impl TestRedis {
    pub fn new() -> Self {
        let prefix = unique("sytest");
        let queues = Queues::new(&redis_url(), &prefix).expect("redis url");
        Self { prefix, queues }
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let pattern = format!("{}:*", self.prefix);
        let _ = std::thread::spawn(move || -> redis::RedisResult<()> {
            let client = redis::Client::open(redis_url())?;
            let mut conn = client.get_connection()?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
            }
            Ok(())
        })
        .join();
    }
}
