//! Mailgun's two body shapes, read into one [`Form`]: `application/x-www-form-urlencoded` (an
//! email without attachments) and `multipart/form-data` (with attachments, which Mailgun sends as
//! file parts `attachment-1`, `attachment-2`, …). Attachments travel in the job as base64, since a
//! forwarded email cannot be fetched from Mailgun later; the body limit bounds their size.

use base64::Engine as _;
use bytes::Bytes;
use hyper::{HeaderMap, header};
use serde_json::{Map, Value, json};

use crate::{body, errors::IngressError};

/// Text fields in order, and file parts.
#[derive(Default)]
pub struct Form {
    pub fields: Vec<(String, String)>,
    pub attachments: Vec<Value>,
}

pub const MULTIPART: &str = "multipart/form-data";

impl Form {
    /// Reads a body of either shape; anything else is a 415.
    pub async fn read(headers: &HeaderMap, bytes: Bytes) -> Result<Self, IngressError> {
        match body::media_type(headers).as_deref() {
            Some(body::FORM) => Ok(Self::urlencoded(&bytes)),
            Some(MULTIPART) => Self::multipart(headers, bytes).await,
            _ => Err(IngressError::UnsupportedMediaType {
                expected: "application/x-www-form-urlencoded or multipart/form-data",
            }),
        }
    }

    pub fn urlencoded(bytes: &[u8]) -> Self {
        let fields = url::form_urlencoded::parse(bytes).into_owned().collect();
        Self {
            fields,
            attachments: Vec::new(),
        }
    }

    async fn multipart(headers: &HeaderMap, bytes: Bytes) -> Result<Self, IngressError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let boundary = multer::parse_boundary(content_type)
            .map_err(|_| IngressError::invalid("content-type", "has no multipart boundary"))?;
        let stream =
            futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(bytes) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        let malformed = |_| IngressError::invalid("body", "is not valid multipart/form-data");
        let mut form = Self::default();
        while let Some(field) = multipart.next_field().await.map_err(malformed)? {
            let name = field.name().unwrap_or_default().to_owned();
            let Some(filename) = field.file_name().map(str::to_owned) else {
                form.fields
                    .push((name, field.text().await.map_err(malformed)?));
                continue;
            };
            let content_type = field.content_type().map(ToString::to_string);
            let data = field.bytes().await.map_err(malformed)?;
            form.attachments.push(json!({
                "field": name,
                "filename": filename,
                "content_type": content_type,
                "size": data.len(),
                "content_base64": base64::engine::general_purpose::STANDARD.encode(&data),
            }));
        }
        Ok(form)
    }

    /// The last value of `name` (Mailgun sends each field once).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The form as the job's `raw`: fields as strings, plus `attachments` when there are any.
    pub fn to_json(&self) -> Value {
        let mut raw: Map<String, Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        if !self.attachments.is_empty() {
            raw.insert("attachments".into(), Value::Array(self.attachments.clone()));
        }
        Value::Object(raw)
    }
}
