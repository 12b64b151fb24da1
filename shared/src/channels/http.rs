//! Outbound HTTP for the provider adapters: one pooled [`reqwest::Client`] per process, a timeout
//! per attempt, and transport failures turned into transient verdicts.
//!
//! Secrets travel in headers or, for Messenger, in the query string; nothing here logs or keeps
//! a URL with its query, and reqwest errors are stripped of their URL before they become
//! verdict text (which lands in failed_jobs and Sentry).

use std::{sync::OnceLock, time::Duration};

use bytes::Bytes;

use super::verdict::{ProviderError, SendError};

/// Limits of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpOptions {
    /// The whole attempt, connect to last body byte; well inside the deliveries queue's 30 s.
    pub timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
        }
    }
}

/// The process's client: connection pools are per client, so every adapter shares this one.
pub fn http_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            // Building only fails when the TLS backend cannot initialise; the default client
            // would fail the same way, loudly, which is what we want at the first send.
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

/// An HTTP answer, whatever its status.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    /// The Retry-After header (delta-seconds or an HTTP date), when present and parseable.
    pub retry_after: Option<Duration>,
    pub body: Bytes,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text, shortened for error messages.
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(500).collect()
    }
}

/// Sends `request` with the attempt's timeout; a transport failure is transient.
pub async fn send(
    request: reqwest::RequestBuilder,
    options: HttpOptions,
) -> Result<Answer, SendError> {
    let response = request
        .timeout(options.timeout)
        .send()
        .await
        .map_err(|e| transport_error(e, options))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = response
        .bytes()
        .await
        .map_err(|e| transport_error(e, options))?;
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

fn transport_error(error: reqwest::Error, options: HttpOptions) -> SendError {
    let message = if error.is_timeout() {
        format!("no answer within {:?}", options.timeout)
    } else if error.is_connect() {
        format!("cannot connect: {}", error.without_url())
    } else {
        error.without_url().to_string()
    };
    SendError::Transient {
        error: ProviderError::message(message),
    }
}

/// Retry-After as delta-seconds or an HTTP date (RFC 9110 §10.2.3); a date in the past is zero.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// `base` joined with `path` segments, without doubling or losing slashes.
pub fn endpoint(base: &url::Url, segments: &[&str]) -> Result<url::Url, SendError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| SendError::permanent(format!("base url {base} cannot take a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn endpoints_join_segments() {
        let base = url::Url::parse("http://127.0.0.1:9/graph/").unwrap();
        let url = endpoint(&base, &["v21.0", "me", "messages"]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/graph/v21.0/me/messages");
        let bare = url::Url::parse("http://127.0.0.1:9").unwrap();
        let url = endpoint(&bare, &["api", "sendText"]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/api/sendText");
    }
}
