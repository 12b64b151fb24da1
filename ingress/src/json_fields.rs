//! Typed reads of the provider JSON fields a job needs, each failure a 400 that names the field by
//! its path (`entry[0].messaging[1].message.mid`). Only the fields ingress routes or deduplicates
//! on are checked here; the rest of a provider payload travels untouched to the worker.

use serde_json::{Map, Value};

use crate::errors::IngressError;

/// The most bytes a provider id may have (DESIGN.md §7); longer ones are refused with 400.
pub const MAX_ID_BYTES: usize = 256;

/// `value` as a JSON object.
pub fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, IngressError> {
    value
        .as_object()
        .ok_or_else(|| IngressError::invalid(path, "must be an object"))
}

/// The value under `key`, required to be an object.
pub fn object_at<'a>(parent: &'a Value, key: &str, path: &str) -> Result<&'a Value, IngressError> {
    let path = join(path, key);
    match parent.get(key) {
        None | Some(Value::Null) => Err(IngressError::invalid(path, "is missing")),
        Some(value) => object(value, &path).map(|_| value),
    }
}

/// The array under `key`; absent counts as empty.
pub fn array_at<'a>(parent: &'a Value, key: &str, path: &str) -> Result<&'a [Value], IngressError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(IngressError::invalid(join(path, key), "must be an array")),
    }
}

/// The string under `key`, required.
pub fn string_at<'a>(parent: &'a Value, key: &str, path: &str) -> Result<&'a str, IngressError> {
    optional_string_at(parent, key, path)?
        .ok_or_else(|| IngressError::invalid(join(path, key), "is missing"))
}

/// The string under `key`, if present and not null.
pub fn optional_string_at<'a>(
    parent: &'a Value,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, IngressError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(IngressError::invalid(join(path, key), "must be a string")),
    }
}

/// A provider id under `key`: a non-empty string of at most [`MAX_ID_BYTES`].
pub fn id_at<'a>(parent: &'a Value, key: &str, path: &str) -> Result<&'a str, IngressError> {
    check_id(string_at(parent, key, path)?, &join(path, key))
}

/// A provider id given as a JSON string or number (Meta sends some ids either way).
pub fn id_or_number_at(parent: &Value, key: &str, path: &str) -> Result<String, IngressError> {
    match parent.get(key) {
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Ok(id_at(parent, key, path)?.to_owned()),
    }
}

/// Checks that `id` is non-empty and at most [`MAX_ID_BYTES`] long.
pub fn check_id<'a>(id: &'a str, path: &str) -> Result<&'a str, IngressError> {
    if id.is_empty() {
        Err(IngressError::invalid(path, "must not be empty"))
    } else if id.len() > MAX_ID_BYTES {
        Err(IngressError::invalid(
            path,
            format!("must be at most {MAX_ID_BYTES} bytes"),
        ))
    } else {
        Ok(id)
    }
}

/// The integer under `key`, required.
pub fn integer_at(parent: &Value, key: &str, path: &str) -> Result<i64, IngressError> {
    match parent.get(key) {
        None | Some(Value::Null) => Err(IngressError::invalid(join(path, key), "is missing")),
        Some(value) => value
            .as_i64()
            .ok_or_else(|| IngressError::invalid(join(path, key), "must be an integer")),
    }
}

/// The boolean under `key`; absent or null is false.
pub fn flag_at(parent: &Value, key: &str, path: &str) -> Result<bool, IngressError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(IngressError::invalid(join(path, key), "must be a boolean")),
    }
}

/// `path.key`, or `key` at the root.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `path[index]`.
pub fn index(path: &str, key: &str, index: usize) -> String {
    format!("{}[{index}]", join(path, key))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn errors_name_the_field_path() {
        let v = json!({"a": {"id": 7, "long": "x".repeat(257), "s": "ok"}});
        let a = &v["a"];
        assert_eq!(id_at(a, "s", "a").unwrap(), "ok");
        assert_eq!(id_or_number_at(a, "id", "a").unwrap(), "7");
        let err = id_at(a, "id", "a").unwrap_err();
        assert_eq!(err.to_string(), "a.id must be a string");
        let err = id_at(a, "long", "a").unwrap_err();
        assert_eq!(err.to_string(), "a.long must be at most 256 bytes");
        let err = string_at(a, "nope", "a").unwrap_err();
        assert_eq!(err.to_string(), "a.nope is missing");
        assert_eq!(index("entry[0]", "messaging", 2), "entry[0].messaging[2]");
        assert!(array_at(a, "missing", "a").unwrap().is_empty());
        assert!(array_at(a, "s", "a").is_err());
    }
}
