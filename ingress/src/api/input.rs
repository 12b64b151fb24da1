//! Request bodies and query strings: JSON objects of at most 64 KiB, read within 10 s, and the
//! typed fields the endpoints need, each refused with its name when missing or mistyped.

use std::time::Duration;

use hyper::{Request, body::Incoming};
use serde_json::{Map, Value};

use super::ApiError;
use crate::body;

const MAX_BODY: usize = 64 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON object in the body.
pub async fn object(request: Request<Incoming>) -> Result<Map<String, Value>, ApiError> {
    let (parts, incoming) = request.into_parts();
    body::require_media_type(&parts.headers, body::JSON)?;
    let bytes = body::read(&parts.headers, incoming, MAX_BODY, READ_TIMEOUT).await?;
    if body::has_nul_character(&bytes) {
        return Err(ApiError::invalid("body", body::NUL_REFUSED));
    }
    match body::json(&bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::invalid("body", "must be a JSON object")),
    }
}

/// A required string field.
pub fn string(body: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    optional_string(body, field)?.ok_or_else(|| ApiError::invalid(field, "is required"))
}

/// An optional string field (`null` counts as absent).
pub fn optional_string(body: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
    }
}

pub fn integer(body: &Map<String, Value>, field: &str) -> Result<i64, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Err(ApiError::invalid(field, "is required")),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| ApiError::invalid(field, "must be an integer")),
        Some(_) => Err(ApiError::invalid(field, "must be an integer")),
    }
}

pub fn optional_integer(body: &Map<String, Value>, field: &str) -> Result<Option<i64>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        _ => integer(body, field).map(Some),
    }
}

pub fn boolean(body: &Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match body.get(field) {
        Some(Value::Bool(b)) => Ok(*b),
        None | Some(Value::Null) => Err(ApiError::invalid(field, "is required")),
        Some(_) => Err(ApiError::invalid(field, "must be true or false")),
    }
}

/// `name=value` pairs of a query string.
pub fn query(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A numeric query parameter within `range`, or `default`.
pub fn query_number(
    pairs: &[(String, String)],
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    match pairs.iter().find(|(k, _)| k == name) {
        None => Ok(default),
        Some((_, v)) => v
            .parse::<i64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    name,
                    format!("must be a number from {} to {}", range.start(), range.end()),
                )
            }),
    }
}

/// An id from the path: our ids are short and in a small alphabet; anything else is not found.
pub fn path_id(id: &str, entity: &'static str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::Conversation(
            shared::conversation::ConversationError::not_found(entity, id),
        ))
    }
}
