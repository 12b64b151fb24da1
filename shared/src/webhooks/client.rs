//! The HTTP side of a delivery: one signed POST to a subscriber, with every address vetted
//! (see [`super::ssrf`]), no redirects followed (3xx is a failure), no proxy, a timeout per
//! attempt and the response body read only up to a cap.
//!
//! It never decides what an outcome means for the subscription; [`AttemptResult::verdict`] only
//! classifies the response.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{
    config::WebhookConfig,
    signing,
    ssrf::{VettingResolver, resolve_vetted},
};

/// What the subscriber's answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx.
    Delivered,
    /// 410 Gone: the endpoint asks never to be called again.
    Gone,
    /// Anything else: 3xx, 4xx, 5xx, timeout, refused address, connection error.
    Failed,
}

/// One attempt as it happened, ready to be logged.
#[derive(Clone, Debug)]
pub struct AttemptResult {
    pub status: Option<u16>,
    /// The receiver's `Retry-After` on a 429 or 503.
    pub retry_after: Option<Duration>,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    pub duration: Duration,
    /// The headers sent, signature redacted.
    pub request_headers: Value,
}

impl AttemptResult {
    pub fn verdict(&self) -> Verdict {
        match self.status {
            Some(s) if (200..300).contains(&s) => Verdict::Delivered,
            Some(410) => Verdict::Gone,
            _ => Verdict::Failed,
        }
    }

    /// A one-line reason for a failed attempt.
    pub fn failure(&self) -> Option<String> {
        match (self.verdict(), &self.error, self.status) {
            (Verdict::Delivered, _, _) => None,
            (_, Some(error), _) => Some(error.clone()),
            (_, None, Some(status)) => Some(format!("HTTP {status}")),
            (_, None, None) => Some("no response".into()),
        }
    }

    fn refused(error: String, request_headers: Value) -> Self {
        Self {
            status: None,
            retry_after: None,
            response_excerpt: None,
            error: Some(error),
            duration: Duration::ZERO,
            request_headers,
        }
    }
}

/// One message to send: the same `msg_id` and body on every attempt, a fresh timestamp each time.
pub struct Outgoing<'a> {
    pub url: &'a str,
    pub msg_id: &'a str,
    pub body: &'a str,
    /// Current secret first; the previous one too while a rotation overlaps.
    pub secrets: Vec<&'a str>,
}

/// A pooled client shared by every delivery of a process.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    config: Arc<WebhookConfig>,
}

impl WebhookClient {
    pub fn new(config: Arc<WebhookConfig>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(VettingResolver {
                allow: config.allow_nets.clone(),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("Switchyard-Webhooks/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Vets the destination, signs and POSTs. Never fails: every problem becomes a failed attempt.
    pub async fn send(&self, out: &Outgoing<'_>) -> AttemptResult {
        let timestamp = Utc::now().timestamp();
        let signature =
            signing::signature_header(&out.secrets, out.msg_id, timestamp, out.body.as_bytes());
        let logged = json!({
            "content-type": "application/json",
            "webhook-id": out.msg_id,
            "webhook-timestamp": timestamp.to_string(),
            "webhook-signature": "[redacted]",
        });
        let signature = match signature {
            Ok(s) => s,
            Err(e) => return AttemptResult::refused(e.to_string(), logged),
        };
        if let Err(reason) = self.check_destination(out.url).await {
            return AttemptResult::refused(reason, logged);
        }
        let started = Instant::now();
        let sent = self
            .http
            .post(out.url)
            .header("content-type", "application/json")
            .header("webhook-id", out.msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(out.body.to_owned())
            .send()
            .await;
        let mut result = match sent {
            Ok(response) => self.read(response).await,
            Err(e) => AttemptResult::refused(describe(&e), Value::Null),
        };
        result.duration = started.elapsed();
        result.request_headers = logged;
        result
    }

    /// URL shape, scheme, and the SSRF vetting of what the host resolves to now. The client's
    /// resolver vets again at connection time, so this check is for a clear error message.
    pub async fn check_destination(&self, url: &str) -> Result<(), String> {
        let parsed = check_url(url)?;
        let host = parsed.host_str().unwrap_or_default();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs = resolve_vetted(host, port, &self.config.allow_nets).await?;
        let all_allowed = addrs.iter().all(|a| self.config.allow_nets.allows(a.ip()));
        if parsed.scheme() == "http" && !self.config.allow_http && !all_allowed {
            return Err("https is required for webhook URLs".into());
        }
        Ok(())
    }

    async fn read(&self, mut response: reqwest::Response) -> AttemptResult {
        let status = response.status().as_u16();
        let retry_after = matches!(status, 429 | 503)
            .then(|| response.headers().get("retry-after"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let cap = self.config.response_cap;
        let mut body = Vec::new();
        let mut error = None;
        while body.len() < cap {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    error = Some(format!("reading the response: {}", describe(&e)));
                    break;
                }
            }
        }
        body.truncate(cap);
        AttemptResult {
            status: Some(status),
            retry_after,
            response_excerpt: Some(String::from_utf8_lossy(&body).into_owned()),
            error,
            duration: Duration::ZERO,
            request_headers: Value::Null,
        }
    }
}

/// Parses and checks a subscriber URL's shape: http(s) and a host. Whether plain http is
/// acceptable depends on where the host resolves to, so [`WebhookClient::check_destination`]
/// decides that.
pub fn check_url(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!(
            "scheme {:?} is not allowed; use https",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(parsed)
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    (at - now).to_std().ok()
}

/// The error and its causes on one line (reqwest hides the interesting part in `source`).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn urls_need_http_or_https_and_a_host() {
        assert!(check_url("https://example.com/hook").is_ok());
        assert!(check_url("ftp://example.com/").is_err());
        assert!(check_url("not a url").is_err());
        assert!(check_url("file:///etc/passwd").is_err());
    }

    #[test]
    fn verdicts_follow_the_status() {
        let with = |status| AttemptResult {
            status,
            retry_after: None,
            response_excerpt: None,
            error: None,
            duration: Duration::ZERO,
            request_headers: Value::Null,
        };
        assert_eq!(with(Some(200)).verdict(), Verdict::Delivered);
        assert_eq!(with(Some(204)).verdict(), Verdict::Delivered);
        assert_eq!(with(Some(301)).verdict(), Verdict::Failed);
        assert_eq!(with(Some(410)).verdict(), Verdict::Gone);
        assert_eq!(with(Some(500)).verdict(), Verdict::Failed);
        assert_eq!(with(None).verdict(), Verdict::Failed);
        assert_eq!(with(Some(301)).failure().as_deref(), Some("HTTP 301"));
    }
}
