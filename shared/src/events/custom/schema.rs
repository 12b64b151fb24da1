//! JSON Schema for custom event types: checking a schema a tenant registers, and validating the
//! `data` of a published event against it.
//!
//! Drafts 2020-12 (the default, when `$schema` is absent) and 7 are accepted. A schema is
//! checked against its draft's meta-schema, then compiled with every external reference refused
//! (`offline`: a remote `$ref` would make us fetch a tenant-chosen URL — SSRF), with `pattern`
//! run by the linear-time `regex` engine (no catastrophic backtracking on tenant patterns),
//! and `format` asserted (a schema that says `date-time` means it).

use jsonschema::{Draft, PatternOptions, Validator};
use serde::Serialize;
use serde_json::Value;

/// The largest schema accepted, serialised.
pub const MAX_SCHEMA_BYTES: usize = 32 * 1024;
/// At most this many violations are reported for one event.
pub const MAX_VIOLATIONS: usize = 50;
const MAX_MESSAGE: usize = 300;

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";
const DRAFT_7: [&str; 4] = [
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-07/schema",
    "https://json-schema.org/draft-07/schema#",
    "https://json-schema.org/draft-07/schema",
];

/// One way `data` breaks the schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaViolation {
    /// JSON pointer into the request body (`/data/amount`); `/data` for the whole payload.
    pub pointer: String,
    /// What is wrong, as the validator says it.
    pub message: String,
    /// JSON pointer into the schema, to the keyword that failed (`/properties/amount/type`).
    pub schema_path: String,
}

/// The draft `schema` declares, if it is one we accept.
fn draft_of(schema: &Value) -> Result<Draft, String> {
    match schema.get("$schema") {
        None => Ok(Draft::Draft202012),
        Some(Value::String(uri)) if uri.trim_end_matches('#') == DRAFT_2020_12 => {
            Ok(Draft::Draft202012)
        }
        Some(Value::String(uri)) if DRAFT_7.contains(&uri.as_str()) => Ok(Draft::Draft7),
        Some(other) => Err(format!(
            "$schema {other} is not supported; use {DRAFT_2020_12} or {} (or leave it out)",
            DRAFT_7[0]
        )),
    }
}

/// Compiles a schema a tenant submits, or says why it is not a usable JSON Schema.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    if !schema.is_object() {
        return Err("must be a JSON Schema object".into());
    }
    let size = serde_json::to_string(schema).map(|s| s.len()).unwrap_or(0);
    if size > MAX_SCHEMA_BYTES {
        return Err(format!(
            "is {size} bytes; at most {MAX_SCHEMA_BYTES} are accepted"
        ));
    }
    let draft = draft_of(schema)?;
    let meta = match draft {
        Draft::Draft7 => jsonschema::draft7::meta::validate(schema),
        _ => jsonschema::draft202012::meta::validate(schema),
    };
    if let Err(error) = meta {
        let at = error.instance_path().as_str();
        let at = if at.is_empty() { "the root" } else { at };
        return Err(format!(
            "is not a valid JSON Schema: at {at}: {}",
            short(&error.to_string())
        ));
    }
    jsonschema::options()
        .with_draft(draft)
        .offline()
        .with_pattern_options(PatternOptions::regex())
        .should_validate_formats(true)
        .build(schema)
        .map_err(|error| {
            format!(
                "cannot be compiled (only references inside the schema, like #/$defs/…, are \
                 followed): {}",
                short(&error.to_string())
            )
        })
}

/// Every way `data` breaks the schema (at most [`MAX_VIOLATIONS`]); empty when it matches.
pub fn violations(validator: &Validator, data: &Value) -> Vec<SchemaViolation> {
    validator
        .iter_errors(data)
        .take(MAX_VIOLATIONS)
        .map(|error| SchemaViolation {
            pointer: format!("/data{}", error.instance_path().as_str()),
            message: short(&error.to_string()),
            schema_path: error.schema_path().as_str().to_owned(),
        })
        .collect()
}

/// Cuts a validator message (which may quote a large value) to a readable length.
fn short(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn order_schema() -> Value {
        json!({
            "type": "object",
            "required": ["order_id", "amount"],
            "properties": {
                "order_id": { "type": "string" },
                "amount": { "type": "integer", "minimum": 0 },
                "items": { "type": "array", "items": { "$ref": "#/$defs/item" } }
            },
            "$defs": { "item": { "type": "object", "required": ["sku"] } }
        })
    }

    #[test]
    fn violations_name_each_field_by_pointer() {
        let validator = compile(&order_schema()).unwrap();
        assert!(violations(&validator, &json!({"order_id": "o1", "amount": 5})).is_empty());
        let found = violations(
            &validator,
            &json!({"amount": -1, "items": [{"sku": "a"}, {}]}),
        );
        let mut pointers: Vec<&str> = found.iter().map(|v| v.pointer.as_str()).collect();
        pointers.sort_unstable();
        assert_eq!(
            pointers,
            ["/data", "/data/amount", "/data/items/1"],
            "{found:?}"
        );
        assert!(found.iter().any(|v| v.schema_path.ends_with("/minimum")));
    }

    #[test]
    fn schemas_that_are_not_json_schema_are_refused_with_the_reason() {
        let why = compile(&json!({"type": "strnig"})).unwrap_err();
        assert!(why.contains("not a valid JSON Schema"), "{why}");
        assert!(compile(&json!(["type"])).is_err());
        let why =
            compile(&json!({"$schema": "http://json-schema.org/draft-04/schema#"})).unwrap_err();
        assert!(why.contains("not supported"), "{why}");
        assert!(
            compile(
                &json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"})
            )
            .is_ok()
        );
        let big = json!({"description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(compile(&big).unwrap_err().contains("bytes"));
    }

    #[test]
    fn remote_references_are_never_fetched() {
        // A loopback listener that would see the fetch if one were made.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/schema.json", listener.local_addr().unwrap());
        let why = compile(&json!({"$ref": url})).unwrap_err();
        assert!(why.contains("cannot be compiled"), "{why}");
        assert!(listener.accept().is_err(), "the schema's $ref was fetched");
    }
}
