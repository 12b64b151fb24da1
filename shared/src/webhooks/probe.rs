//! The test-webhook probe (`POST /api/events/test-webhook`): send a sample event to a URL now
//! and report what happened, with the same signing, SSRF vetting and timeout as real deliveries.
//! Nothing is stored or retried.

use serde::Serialize;
use serde_json::Value;

use super::{
    Webhooks,
    client::{Outgoing, Verdict},
    signing,
};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProbeResult {
    pub ok: bool,
    pub webhook_id: String,
    pub status: Option<u16>,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

impl Webhooks {
    /// POSTs `event` (its `id` is the `webhook-id`; one is made up if missing) to `url`, signed
    /// with `secret` (a throwaway secret when `None`), and waits for the answer.
    pub async fn test_webhook(
        &self,
        url: &str,
        event: &Value,
        secret: Option<&str>,
    ) -> ProbeResult {
        let webhook_id = event
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("msg_{}", ulid::Ulid::new()));
        let throwaway = signing::generate_secret();
        let body = serde_json::to_string(event).unwrap_or_default();
        let result = self
            .client
            .send(&Outgoing {
                url,
                msg_id: &webhook_id,
                body: &body,
                secrets: vec![secret.unwrap_or(&throwaway)],
            })
            .await;
        ProbeResult {
            ok: result.verdict() == Verdict::Delivered,
            status: result.status,
            error: result.failure(),
            response_excerpt: result.response_excerpt,
            duration_ms: result.duration.as_millis() as u64,
            webhook_id,
        }
    }
}
