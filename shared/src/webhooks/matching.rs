//! Which events a subscription wants: its event types (`*` for all) and its filters on the
//! event's `data`.
//!
//! A filter is a JSON object mapping a dotted path into `data` (`"channel"`,
//! `"message.direction"`) to a condition. A condition is either a plain JSON value (equality) or
//! an object with exactly one operator: `{"eq": v}`, `{"ne": v}`, `{"in": [..]}`,
//! `{"not_in": [..]}`, `{"exists": bool}`. Every condition must hold. A missing field satisfies
//! only `{"exists": false}`. Numbers compare by value (`1` equals `1.0`).

use serde_json::{Map, Value};

/// The wildcard event type.
pub const ALL_EVENTS: &str = "*";

const OPERATORS: [&str; 5] = ["eq", "ne", "in", "not_in", "exists"];

/// True when `event_type` is one of `patterns` or `patterns` holds `*`.
pub fn type_matches(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|p| p == ALL_EVENTS || p == event_type)
}

/// True when every condition of `filters` holds on `data`.
pub fn filters_match(filters: &Value, data: &Value) -> bool {
    match filters.as_object() {
        Some(conditions) => conditions
            .iter()
            .all(|(path, condition)| condition_holds(lookup(data, path), condition)),
        None => filters.is_null(),
    }
}

/// Checks filters a tenant submits, so a typo is a 400 rather than a subscription that never
/// fires.
pub fn validate_filters(filters: &Value) -> Result<(), String> {
    let Some(conditions) = filters.as_object() else {
        return Err("filters must be a JSON object of path → condition".into());
    };
    for (path, condition) in conditions {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(format!("filter path {path:?} is not a dotted path"));
        }
        if let Some((op, operand)) = operator(condition) {
            let ok = match op {
                "in" | "not_in" => operand.is_array(),
                "exists" => operand.is_boolean(),
                _ => true,
            };
            if !ok {
                return Err(format!(
                    "filter {path:?}: operand of {op:?} has the wrong type"
                ));
            }
        }
    }
    Ok(())
}

/// Validates a list of event types: non-empty, each `*` or a dotted name.
pub fn validate_event_types(types: &[String]) -> Result<(), String> {
    if types.is_empty() {
        return Err("event_types must name at least one event type or \"*\"".into());
    }
    let valid = |t: &String| {
        t == ALL_EVENTS
            || (!t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
    };
    match types.iter().find(|t| !valid(t)) {
        Some(bad) => Err(format!("event type {bad:?} is not valid")),
        None => Ok(()),
    }
}

fn lookup<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(data, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// `Some((op, operand))` when `condition` is a one-key object naming an operator.
fn operator(condition: &Value) -> Option<(&str, &Value)> {
    let map: &Map<String, Value> = condition.as_object()?;
    let (key, operand) = map.iter().next()?;
    (map.len() == 1 && OPERATORS.contains(&key.as_str())).then_some((key.as_str(), operand))
}

fn condition_holds(field: Option<&Value>, condition: &Value) -> bool {
    let Some((op, operand)) = operator(condition) else {
        return field.is_some_and(|f| same(f, condition));
    };
    let any_equal = |list: &Value| {
        list.as_array()
            .is_some_and(|items| field.is_some_and(|f| items.iter().any(|i| same(f, i))))
    };
    match op {
        "eq" => field.is_some_and(|f| same(f, operand)),
        "ne" => field.is_some_and(|f| !same(f, operand)),
        "in" => any_equal(operand),
        "not_in" => field.is_some() && !any_equal(operand),
        "exists" => operand.as_bool() == Some(field.is_some()),
        _ => false,
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_match_exactly_or_by_wildcard() {
        let some = vec!["message.ready".to_owned(), "case.closed".to_owned()];
        assert!(type_matches(&some, "message.ready"));
        assert!(!type_matches(&some, "message.ready.v2"));
        assert!(!type_matches(&some, "message"));
        assert!(type_matches(&["*".to_owned()], "anything.at.all"));
        assert!(!type_matches(&[], "message.ready"));
    }

    #[test]
    fn filters_cover_equality_membership_and_existence() {
        let data =
            json!({"channel": "whatsapp", "n": 3, "message": {"direction": "in"}, "tags": ["a"]});
        let cases = [
            (json!({}), true),
            (json!(null), true),
            (json!({"channel": "whatsapp"}), true),
            (json!({"channel": "email"}), false),
            (json!({"n": 3.0}), true),
            (json!({"message.direction": "in"}), true),
            (json!({"message.direction": {"in": ["out", "in"]}}), true),
            (json!({"channel": {"in": ["email", "widget"]}}), false),
            (json!({"channel": {"not_in": ["email"]}}), true),
            (json!({"channel": {"ne": "whatsapp"}}), false),
            (json!({"missing": {"exists": false}}), true),
            (json!({"missing": {"ne": "x"}}), false),
            (json!({"missing": "x"}), false),
            (json!({"tags.0": "a"}), true),
            (json!({"message": {"direction": "in"}}), true),
            (json!({"channel": "whatsapp", "n": 4}), false),
        ];
        for (filters, expected) in cases {
            assert_eq!(filters_match(&filters, &data), expected, "{filters}");
        }
    }

    #[test]
    fn bad_filters_and_types_are_refused() {
        assert!(validate_filters(&json!({"a": {"in": 3}})).is_err());
        assert!(validate_filters(&json!({"a..b": 1})).is_err());
        assert!(validate_filters(&json!([1])).is_err());
        assert!(validate_filters(&json!({"a": {"in": [1]}, "b": 2})).is_ok());
        assert!(validate_event_types(&[]).is_err());
        assert!(validate_event_types(&["message ready".into()]).is_err());
        assert!(validate_event_types(&["*".into(), "case.closed".into()]).is_ok());
    }
}
