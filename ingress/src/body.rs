//! Reading a request body safely: the content type is checked before a byte is read, the size is
//! capped while reading (a declared `Content-Length` over the cap is refused at once, a chunked
//! body is cut off at the cap), and a client that trickles its body is timed out. Nothing is
//! buffered beyond the limit, so no client can exhaust memory or hold a task forever.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::{HeaderMap, body::Incoming, header};

use crate::errors::IngressError;

pub const JSON: &str = "application/json";
pub const FORM: &str = "application/x-www-form-urlencoded";

/// The media type of the request, lowercased, without parameters (`; charset=…`).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// Refuses the request with 415 unless its media type is `expected`.
pub fn require_media_type(headers: &HeaderMap, expected: &'static str) -> Result<(), IngressError> {
    match media_type(headers) {
        Some(found) if found == expected => Ok(()),
        _ => Err(IngressError::UnsupportedMediaType { expected }),
    }
}

/// Reads the whole body, at most `limit` bytes, within `timeout`.
pub async fn read(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, IngressError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(IngressError::TooLarge { limit });
    }
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect())
        .await
        .map_err(|_| IngressError::BodyTimeout)?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(IngressError::TooLarge { limit })
        }
        Err(_) => Err(IngressError::BodyUnreadable),
    }
}

/// Parses a JSON body; a syntax error is a 400 naming the body.
pub fn json(bytes: &[u8]) -> Result<serde_json::Value, IngressError> {
    serde_json::from_slice(bytes)
        .map_err(|e| IngressError::invalid("body", format!("is not valid JSON: {e}")))
}
