//! Webhook authentication: HMAC signatures over the raw request bytes, and shared-secret
//! credentials (bearer tokens, basic auth, Meta's verify token), all compared in constant time.
//!
//! Signatures are always computed over the bytes exactly as received, never over re-serialised
//! JSON: Meta escapes non-ASCII (`ä` travels as `\u00e4`) and any re-encoding would break them.
//! Nothing here logs; callers turn a failure into a 401 without echoing what was sent.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::errors::AuthFailure;

/// Whether `signature_hex` is the hex HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256_matches(key: &[u8], message: &[&[u8]], signature_hex: &str) -> bool {
    let mut expected = [0u8; 32];
    if hex::decode_to_slice(signature_hex.trim(), &mut expected).is_err() {
        return false;
    }
    // An HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    message.iter().for_each(|part| mac.update(part));
    mac.verify_slice(&expected).is_ok()
}

/// Whether `signature_hex` is the hex HMAC-SHA512 of `message` under `key` (WAHA).
pub fn hmac_sha512_matches(key: &[u8], message: &[u8], signature_hex: &str) -> bool {
    // Decoded onto the stack: a signature of the wrong length or with a non-hex digit fails here.
    let mut expected = [0u8; 64];
    if hex::decode_to_slice(signature_hex.trim(), &mut expected).is_err() {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha512>::new_from_slice(key) else {
        return false;
    };
    mac.update(message);
    mac.verify_slice(&expected).is_ok()
}

/// Checks Meta's `X-Hub-Signature-256: sha256=<hex>` header against the raw body.
pub fn meta_signature(
    app_secret: &str,
    body: &[u8],
    header: Option<&str>,
) -> Result<(), AuthFailure> {
    let header = header.ok_or(AuthFailure::MissingSignature("X-Hub-Signature-256"))?;
    let hex = header
        .strip_prefix("sha256=")
        .ok_or(AuthFailure::BadSignature)?;
    if hmac_sha256_matches(app_secret.as_bytes(), &[body], hex) {
        Ok(())
    } else {
        Err(AuthFailure::BadSignature)
    }
}

/// Constant-time equality of two secrets (the length is not secret).
pub fn secrets_equal(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The user and password of an `Authorization: Basic <base64>` header.
pub fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let (scheme, encoded) = header?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign256(key: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn meta_signatures_cover_the_raw_bytes() {
        let body = br#"{"text":"\u00e4"}"#;
        let header = format!("sha256={}", sign256("s3cret", body));
        assert_eq!(meta_signature("s3cret", body, Some(&header)), Ok(()));
        let reencoded = r#"{"text":"ä"}"#.as_bytes();
        assert_eq!(
            meta_signature("s3cret", reencoded, Some(&header)),
            Err(AuthFailure::BadSignature)
        );
        assert_eq!(
            meta_signature("other", body, Some(&header)),
            Err(AuthFailure::BadSignature)
        );
        assert_eq!(
            meta_signature("s3cret", body, None),
            Err(AuthFailure::MissingSignature("X-Hub-Signature-256"))
        );
        assert_eq!(
            meta_signature("s3cret", body, Some("sha1=00")),
            Err(AuthFailure::BadSignature)
        );
        assert_eq!(
            meta_signature("s3cret", body, Some("sha256=zz")),
            Err(AuthFailure::BadSignature)
        );
    }

    #[test]
    fn waha_signatures_must_be_the_whole_hex_hmac_sha512() {
        let body = br#"{"event":"message"}"#;
        let mut mac = Hmac::<Sha512>::new_from_slice(b"k3y").unwrap();
        mac.update(body);
        let signature = hex::encode(mac.finalize().into_bytes());
        assert!(hmac_sha512_matches(b"k3y", body, &signature));
        assert!(hmac_sha512_matches(b"k3y", body, &signature.to_uppercase()));
        assert!(!hmac_sha512_matches(b"other", body, &signature));
        assert!(!hmac_sha512_matches(b"k3y", b"{}", &signature));
        // Truncated, too long, not hex, empty.
        assert!(!hmac_sha512_matches(b"k3y", body, &signature[..64]));
        assert!(!hmac_sha512_matches(
            b"k3y",
            body,
            &format!("{signature}00")
        ));
        assert!(!hmac_sha512_matches(
            b"k3y",
            body,
            &signature.replace(&signature[..2], "zz")
        ));
        assert!(!hmac_sha512_matches(b"k3y", body, ""));
    }

    #[test]
    fn credentials_parse() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("pm:pa:ss")
        );
        assert_eq!(
            basic_credentials(Some(&header)),
            Some(("pm".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials(Some("Basic !!!")), None);
        assert!(secrets_equal("a", "a") && !secrets_equal("a", "b") && !secrets_equal("a", "ab"));
    }
}
