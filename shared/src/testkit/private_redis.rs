//! A `redis-server` of a test's own on a free port (and a Unix socket), so a test can stop,
//! restart and count commands on Redis without disturbing the other tests.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

pub struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    pub fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }

    pub async fn start(port: u16) -> Self {
        let socket = Self::socket_of(port);
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--unixsocket", &socket, "--unixsocketperm", "700"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let redis = Self { port, child };
        for _ in 0..200 {
            if redis.admin().await.is_some() {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis-server did not come up");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// This server's URL.
    pub fn url(&self) -> String {
        Self::url_of(self.port)
    }

    /// The URL a server on `port` has (or will have, once started).
    pub fn url_of(port: u16) -> String {
        format!("redis://127.0.0.1:{port}")
    }

    /// This server's URL on its Unix socket (`unix:///…`), as a process on the same host may
    /// use it.
    pub fn unix_url(&self) -> String {
        format!("unix://{}", Self::socket_of(self.port))
    }

    fn socket_of(port: u16) -> String {
        std::env::temp_dir()
            .join(format!("switchyard-test-redis-{port}.sock"))
            .display()
            .to_string()
    }

    /// A connection of the test's own, outside the one under test. It checks with ECHO, not
    /// PING, so the PINGs counted are only those of the connection under test.
    pub async fn admin(&self) -> Option<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(Self::url_of(self.port)).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("ECHO")
            .arg("up")
            .query_async::<String>(&mut conn)
            .await
            .ok()?;
        Some(conn)
    }

    pub async fn command_count(&self, command: &str) -> u64 {
        let mut admin = self.admin().await.expect("admin connection");
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut admin)
            .await
            .expect("INFO");
        let prefix = format!("cmdstat_{command}:calls=");
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().expect("a count"))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(Self::socket_of(self.port));
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
