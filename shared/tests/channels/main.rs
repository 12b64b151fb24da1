//! Integration tests of `shared::channels` against loopback stand-ins for every provider (HTTP
//! for WAHA and the Graph API, SMTP for email) and the real Redis for the widget, the token
//! buckets and the send records. No test asserts on elapsed time.

mod delivery;
mod errors;
mod handler;
mod ledger;
mod pause_record;
mod send;
mod smtp_server;
mod standin;
mod status;
mod throttle;

use std::time::Duration;

use shared::{
    channels::{
        HttpOptions, MessengerConfig, MessengerSender, WahaConfig, WahaSender, WhatsappCloudConfig,
        WhatsappCloudSender,
    },
    config::Secret,
    queue::Queues,
};

pub const PAGE_TOKEN: &str = "EAAGpagetoken-never-logged";
pub const WA_TOKEN: &str = "EAAGwhatsapptoken-never-logged";
pub const WAHA_KEY: &str = "waha-api-key";

pub fn http() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(10),
    }
}

pub fn waha(base: &url::Url) -> WahaSender {
    WahaSender::new(WahaConfig {
        base_url: base.clone(),
        session: "default".into(),
        api_key: Some(Secret::new(WAHA_KEY)),
        http: http(),
    })
}

pub fn messenger(base: &url::Url) -> MessengerSender {
    MessengerSender::new(MessengerConfig {
        graph_base: base.clone(),
        api_version: "v21.0".into(),
        page_access_token: Secret::new(PAGE_TOKEN),
        http: http(),
    })
}

pub fn whatsapp(base: &url::Url) -> WhatsappCloudSender {
    WhatsappCloudSender::new(WhatsappCloudConfig {
        graph_base: base.clone(),
        api_version: "v21.0".into(),
        phone_number_id: "106540352242922".into(),
        access_token: Secret::new(WA_TOKEN),
        http: http(),
    })
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix of its own on the test Redis, its keys deleted on drop.
pub struct TestRedis {
    pub prefix: String,
    pub queues: Queues,
}

impl TestRedis {
    pub fn new() -> Self {
        let prefix = format!("sytest_ch_{}", ulid::Ulid::new().to_string().to_lowercase());
        let queues = Queues::new(&redis_url(), &prefix).unwrap();
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
            let mut conn = redis::Client::open(redis_url())?.get_connection()?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
            }
            Ok(())
        })
        .join();
    }
}
