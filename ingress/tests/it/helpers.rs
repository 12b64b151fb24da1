//! Test support: `TestApp::spawn()` runs the real ingress on port 0 against a fresh Postgres
//! database and a private Redis key prefix, creates inboxes, sends requests and reads the jobs
//! back from the real streams. Provider payloads come from `tests/fixtures` (copies of the
//! project's shared fixtures) and are signed here with the tests' own secrets.

use std::net::SocketAddr;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use ingress::{App, Config};
use serde_json::Value;
use shared::{
    config::{Secret, StoreConfig},
    inboxes::{self, InboxKind, NewInbox},
    queue::{Job, QueueName, Queues},
    testkit::{TestDb, TestRedis},
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub const META_SECRET: &str = "meta-app-secret-for-tests";
pub const VERIFY_TOKEN: &str = "verify-token-for-tests";
pub const QUEUES: [&str; 4] = ["whatsapp-messages", "facebook", "email", "widget"];

pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDb,
    pub queues: Queues,
    pub redis_url: String,
    pub tenant_id: String,
    pub stop: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _redis: Option<TestRedis>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("json body ({e}): {:?}", self.body))
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(None, |_| {}).await
    }

    /// `redis_url`: a private Redis (default: the shared test Redis with a random prefix).
    pub async fn spawn_with(redis_url: Option<String>, tweak: impl FnOnce(&mut Config)) -> Self {
        shared::telemetry::install_metrics();
        let db = TestDb::new().await;
        let redis = TestRedis::new();
        let redis_url = redis_url.unwrap_or_else(shared::testkit::redis_url);
        let queues = Queues::new(&redis_url, &redis.prefix).expect("redis url");
        let mut config = Config::new(StoreConfig {
            redis_url: Secret::new(redis_url.clone()),
            database_url: Secret::new(db.url.clone()),
            prefix: redis.prefix.clone(),
        });
        config.meta.app_secret = Some(Secret::new(META_SECRET));
        config.meta.verify_token = Some(Secret::new(VERIFY_TOKEN));
        tweak(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let app = App::build(config, listener).await.expect("app builds");
        let addr = app.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(stop.clone()));
        let tenant_id = inboxes::create_tenant(&db.pool, "Acme")
            .await
            .expect("tenant");
        Self {
            addr,
            db,
            queues,
            redis_url,
            tenant_id,
            stop,
            server,
            _redis: Some(redis),
        }
    }

    pub async fn inbox(&self, kind: InboxKind, set: impl FnOnce(&mut NewInbox)) -> String {
        let mut inbox = NewInbox::new(&self.tenant_id, kind, "test inbox");
        set(&mut inbox);
        inboxes::create_inbox(&self.db.pool, &inbox)
            .await
            .expect("inbox")
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "ingress.test");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body.into())).expect("request");
        send(self.addr, request).await
    }

    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        self.request("POST", path, headers, body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], Bytes::new()).await
    }

    /// Every job in `queue`'s stream, oldest first.
    pub async fn jobs(&self, queue: &str) -> Vec<Job> {
        self.job_texts(queue)
            .await
            .iter()
            .map(|json| serde_json::from_str(json).expect("job json"))
            .collect()
    }

    /// Every job in `queue`'s stream as the JSON text stored in Redis, oldest first.
    pub async fn job_texts(&self, queue: &str) -> Vec<String> {
        let key = self
            .queues
            .keys(&QueueName::new(queue).expect("queue"))
            .stream;
        let client = redis::Client::open(self.redis_url.as_str()).expect("redis");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis up");
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .expect("xrange");
        entries
            .into_iter()
            .map(|(_, fields)| {
                fields
                    .chunks(2)
                    .find(|kv| kv[0] == "job")
                    .map(|kv| kv[1].clone())
                    .expect("job field")
            })
            .collect()
    }

    /// The number of jobs in every ingress queue together.
    pub async fn job_count(&self) -> usize {
        let mut total = 0;
        for queue in QUEUES {
            total += self.jobs(queue).await.len();
        }
        total
    }

    /// Asserts the status and error text of a refusal, and that nothing was enqueued.
    pub async fn assert_refused(&self, reply: &Reply, status: u16, error: &str) {
        assert_eq!(reply.status.as_u16(), status, "body: {:?}", reply.body);
        assert_eq!(reply.error(), error, "body: {:?}", reply.body);
        assert_eq!(
            self.job_count().await,
            0,
            "a refused request enqueued something"
        );
    }
}

/// Sends one request on a fresh connection.
pub async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).expect("fixture json")
}

pub fn hmac_sha256_hex(key: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("key");
    parts.iter().for_each(|p| mac.update(p));
    hex::encode(mac.finalize().into_bytes())
}

pub fn hmac_sha512_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `X-Hub-Signature-256` for `body` under the tests' app secret.
pub fn meta_signature(body: &[u8]) -> String {
    format!("sha256={}", hmac_sha256_hex(META_SECRET, &[body]))
}
