//! Reading a request body safely: the content type is checked before a byte is read, the size is
//! capped while reading (a declared `Content-Length` over the cap is refused without keeping a
//! byte, a chunked body is dropped when it passes the cap), and a client that trickles its body
//! is timed out. Nothing is buffered beyond the limit, so no client can exhaust memory or hold a
//! task forever.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
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
///
/// A body over the limit is refused with [`IngressError::TooLarge`], but first the rest of it is
/// read and thrown away (up to another `limit` bytes, within the same `timeout`): a server that
/// answers and closes while the client is still sending makes the client's kernel see a reset,
/// and the client then sees a broken pipe instead of our 413 — Meta, say, would retry forever
/// without knowing why. The 413 then closes the connection (`routes::refusal`).
pub async fn read(
    headers: &HeaderMap,
    mut body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, IngressError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let deadline = tokio::time::Instant::now() + timeout;
    let drain_cap = (limit as u64).saturating_mul(2);
    if let Some(length) = declared
        && length > limit as u64
    {
        if length <= drain_cap {
            discard(body, drain_cap, deadline).await;
        }
        return Err(IngressError::TooLarge { limit });
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut read = 0u64;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(IngressError::BodyTimeout),
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(_))) => return Err(IngressError::BodyUnreadable),
        };
        if let Ok(data) = frame.into_data() {
            read += data.len() as u64;
            if read > limit as u64 {
                // A chunked body (or one longer than it said) went over: nothing is kept.
                drop(chunks);
                discard(body, drain_cap.saturating_sub(read), deadline).await;
                return Err(IngressError::TooLarge { limit });
            }
            chunks.push(data);
        }
    }
    Ok(match chunks.len() {
        // The usual case, a body that came in one piece: no copy.
        1 => chunks.pop().unwrap_or_default(),
        _ => chunks.concat().into(),
    })
}

/// Reads and drops up to `cap` more bytes of `body` until `deadline` (see [`read`]).
async fn discard(mut body: Incoming, cap: u64, deadline: tokio::time::Instant) {
    let mut dropped = 0u64;
    while dropped <= cap {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                dropped += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            _ => return,
        }
    }
}

/// Parses a JSON body; a syntax error is a 400 naming the body.
pub fn json(bytes: &[u8]) -> Result<serde_json::Value, IngressError> {
    serde_json::from_slice(bytes)
        .map_err(|e| IngressError::invalid("body", format!("is not valid JSON: {e}")))
}

/// Why a body with a U+0000 character is refused (after the field, `body`).
pub const NUL_REFUSED: &str = "contains the character U+0000 (\\u0000), which cannot be stored";

/// Whether JSON text holds a U+0000 character (only as the escape `\u0000`: a raw NUL byte is
/// not valid JSON). Postgres stores no U+0000 in text or JSONB: input carrying one could not be
/// stored, nor a job carrying it be recorded as failed, so it is refused at the door.
pub fn has_nul_character(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            // An escape: `\u0000` is the character; any other (`\\` included) is skipped whole.
            if bytes[i + 1..].starts_with(b"u0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::has_nul_character;

    #[test]
    fn finds_the_nul_escape_and_nothing_that_only_looks_like_it() {
        assert!(has_nul_character(br#"{"text":"a\u0000b"}"#));
        assert!(has_nul_character(br#"{"a\u0000":1}"#));
        assert!(has_nul_character(br#"{"text":"\\\u0000"}"#));
        assert!(!has_nul_character(br#"{"text":"\\u0000"}"#));
        assert!(!has_nul_character(br#"{"text":"\u0001"}"#));
        assert!(!has_nul_character(br#"{"text":"u0000 \n"}"#));
        assert!(!has_nul_character(
            br#"{"text":"ends with a backslash \\"}"#
        ));
    }
}
