//! Parsing only the fields a route reads. A provider body is mostly content ingress passes on
//! untouched (message text, media metadata, WAHA's `_data`); building a `serde_json::Value` tree
//! of all of it, dropping it and writing it back out cost more CPU than the rest of a webhook.
//! [`parse`] still checks the whole body is JSON, but keeps only the fields a [`Want`] names, as
//! a small `Value` that the route's usual checks ([`crate::json_fields`]) read, with the same
//! errors. The body itself then travels into the job verbatim ([`verbatim`]).

use std::{borrow::Cow, fmt};

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, value::RawValue};

use crate::errors::IngressError;

/// Which parts of a JSON value to keep.
pub enum Want {
    /// All of it.
    Whole,
    /// If it is an object, these members (each kept as its own `Want` says) and no others; an
    /// array keeps its items by the same rule; anything else is kept as it is, so that a route's
    /// type check reports it.
    Fields(&'static [(&'static str, Want)]),
}

/// Parses `bytes` as JSON, keeping what `want` names; a syntax error anywhere in the body is the
/// same 400 as [`crate::body::json`].
pub fn parse(bytes: &[u8], want: &Want) -> Result<Value, IngressError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    Prune(want)
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|e| IngressError::invalid("body", format!("is not valid JSON: {e}")))
}

/// The body as raw JSON for the job, without re-encoding it.
pub fn verbatim(bytes: &Bytes) -> Result<Box<RawValue>, IngressError> {
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| IngressError::invalid("body", "is not valid UTF-8"))?;
    RawValue::from_string(text)
        .map_err(|e| IngressError::invalid("body", format!("is not valid JSON: {e}")))
}

struct Prune<'w>(&'w Want);

impl<'de> DeserializeSeed<'de> for Prune<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.0 {
            Want::Whole => serde::Deserialize::deserialize(deserializer),
            Want::Fields(_) => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Prune<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Prune(self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Want::Fields(fields) = self.0 else {
            unreachable!("Want::Whole is deserialised as a plain Value")
        };
        let mut kept = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            match fields.iter().find(|(name, _)| *name == key) {
                // A repeated key replaces the earlier one, as in a full parse.
                Some((_, want)) => {
                    let value = map.next_value_seed(Prune(want))?;
                    kept.insert(key.into_owned(), value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(kept))
    }
}

/// An object key, borrowed from the body when it has no escapes (most skipped keys).
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WANT: Want = Want::Fields(&[
        ("event", Want::Whole),
        (
            "payload",
            Want::Fields(&[
                ("id", Want::Whole),
                ("list", Want::Fields(&[("k", Want::Whole)])),
            ]),
        ),
    ]);

    #[test]
    fn keeps_the_named_fields_and_drops_the_rest() {
        let body = br#"{"event":"message","big":{"a":[1,2,{"b":"x"}]},"payload":{"id":"m\u0031","body":"hi","list":[{"k":1,"z":2},3]},"event":"again"}"#;
        let kept = parse(body, &WANT).expect("parses");
        assert_eq!(
            kept,
            json!({ "event": "again", "payload": { "id": "m1", "list": [{ "k": 1 }, 3] } })
        );
    }

    #[test]
    fn other_shapes_are_kept_for_the_route_to_refuse() {
        assert_eq!(
            parse(b"[1, {\"event\": 2, \"x\": 3}]", &WANT).unwrap(),
            json!([1, { "event": 2 }])
        );
        assert_eq!(
            parse(br#"{"payload":"text"}"#, &WANT).unwrap(),
            json!({ "payload": "text" })
        );
        assert_eq!(parse(b"null", &WANT).unwrap(), Value::Null);
    }

    #[test]
    fn a_syntax_error_anywhere_is_refused_like_a_full_parse() {
        for body in [
            &br#"{"event":"message","skipped":[1,}"#[..],
            b"{\"event\":1} trailing",
            b"",
        ] {
            let error = parse(body, &WANT).expect_err("invalid");
            let full = crate::body::json(body).expect_err("invalid");
            assert_eq!(error.to_string(), full.to_string());
        }
    }

    #[test]
    fn the_verbatim_body_is_byte_for_byte() {
        let body = Bytes::from_static(b" {\"a\" : \"\\u00e9\", \"b\":[1 ,2]} ");
        let raw = verbatim(&body).expect("json");
        assert_eq!(
            serde_json::to_string(&raw).unwrap(),
            r#"{"a" : "\u00e9", "b":[1 ,2]}"#
        );
    }
}
