//! An independent Standard Webhooks verifier, written from the spec
//! (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md),
//! not from `shared::webhooks::signing`: strip `whsec_`, base64-decode the key, HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, compare in constant time against every
//! space-separated `v1,<base64>` signature, and refuse timestamps more than 5 minutes off.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const TOLERANCE_SECS: i64 = 5 * 60;

pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), String> {
    let ts: i64 = timestamp.parse().map_err(|_| "timestamp is not a number")?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err("timestamp outside tolerance".into());
    }
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or("secret lacks whsec_")?)
        .map_err(|_| "secret is not base64")?;
    for candidate in signatures.split(' ') {
        let Some(("v1", encoded)) = candidate.split_once(',') else {
            continue;
        };
        let Ok(signature) = STANDARD.decode(encoded) else {
            continue;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        if mac.verify_slice(&signature).is_ok() {
            return Ok(());
        }
    }
    Err("no signature matches".into())
}

/// Verifies a received request as a subscriber would.
pub fn verify_request(secret: &str, request: &super::subscriber::Received) -> Result<(), String> {
    verify(
        secret,
        &request.header("webhook-id"),
        &request.header("webhook-timestamp"),
        &request.header("webhook-signature"),
        &request.body,
        chrono::Utc::now().timestamp(),
    )
}
