//! The job envelope: what travels through a queue's stream, delayed set and failed jobs.
//!
//! The envelope is plain JSON so that an operator can read it with `redis-cli` and so that other
//! languages can enqueue. The handler-specific part lives in `payload`; everything the queue needs
//! to route, retry and trace a job sits beside it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::QueueName;

/// A job id: a ULID, so ids sort by creation time and are safe in keys and channel names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Ulid);

impl JobId {
    pub fn new() -> Self {
        Self(Ulid::new())
    }

    pub fn parse(text: &str) -> Option<Self> {
        Ulid::from_string(text).ok().map(Self)
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The envelope of DESIGN.md §3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    pub queue: QueueName,
    pub payload: serde_json::Value,
    /// 1 for the first run; a retry is enqueued with `attempt + 1`.
    pub attempt: u32,
    pub max_attempts: u32,
    pub enqueued_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Job {
    /// A first attempt of `kind` on `queue`; the queue's policy decides `max_attempts`.
    pub fn new(queue: QueueName, kind: impl Into<String>, payload: serde_json::Value) -> Self {
        let id = JobId::new();
        Self {
            id,
            kind: kind.into(),
            max_attempts: queue.policy().tries,
            queue,
            payload,
            attempt: 1,
            enqueued_at: Utc::now(),
            tenant_id: None,
            correlation_id: id.to_string(),
            dedup_key: None,
            last_error: None,
        }
    }

    pub fn with_correlation_id(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = correlation_id.into();
        self
    }

    pub fn with_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    pub fn with_dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    /// The envelope of the next attempt after `error`.
    pub fn next_attempt(&self, error: &str) -> Self {
        Self {
            attempt: self.attempt + 1,
            last_error: Some(error.to_owned()),
            ..self.clone()
        }
    }

    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    pub fn to_json(&self) -> String {
        // Serialising a struct of strings, numbers and a JSON value cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The envelope as [`Job::to_json`] would write it with `dedup_key` set, without cloning
    /// the job (and its payload) to set it.
    pub(crate) fn to_json_with_dedup_key(&self, dedup_key: &str) -> String {
        let envelope = EnvelopeRef {
            id: &self.id,
            kind: &self.kind,
            queue: &self.queue,
            payload: &self.payload,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            enqueued_at: &self.enqueued_at,
            tenant_id: self.tenant_id.as_deref(),
            correlation_id: &self.correlation_id,
            dedup_key: Some(dedup_key),
            last_error: self.last_error.as_deref(),
        };
        serde_json::to_string(&envelope).unwrap_or_default()
    }
}

/// A first attempt's envelope, already written as JSON: what [`Job::new`] with the same parts
/// would write, but from a payload of any serialisable type. Ingress builds one per webhook, so
/// the provider's JSON can travel as a `RawValue`, verbatim, without building a
/// `serde_json::Value` tree of it and writing that back out.
#[derive(Clone, Debug)]
pub struct EncodedJob {
    pub id: JobId,
    pub queue: QueueName,
    pub(crate) json: String,
}

/// The parts of an [`EncodedJob`] besides its queue, kind and payload.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewJobParts<'a> {
    pub tenant_id: Option<&'a str>,
    /// The job id's text when `None`, as in [`Job::new`].
    pub correlation_id: Option<&'a str>,
    pub dedup_key: Option<&'a str>,
}

impl EncodedJob {
    /// The envelope as stored in the stream.
    pub fn json(&self) -> &str {
        &self.json
    }

    pub fn new<P: Serialize + ?Sized>(
        queue: &QueueName,
        kind: &str,
        payload: &P,
        parts: NewJobParts<'_>,
    ) -> Result<Self, serde_json::Error> {
        let id = JobId::new();
        let own_id;
        let correlation_id = match parts.correlation_id {
            Some(given) => given,
            None => {
                own_id = id.to_string();
                &own_id
            }
        };
        let envelope = EnvelopeRef {
            id: &id,
            kind,
            queue,
            payload,
            attempt: 1,
            max_attempts: queue.policy().tries,
            enqueued_at: &Utc::now(),
            tenant_id: parts.tenant_id,
            correlation_id,
            dedup_key: parts.dedup_key,
            last_error: None,
        };
        Ok(Self {
            id,
            queue: queue.clone(),
            json: serde_json::to_string(&envelope)?,
        })
    }

    pub fn as_json(&self) -> &str {
        &self.json
    }
}

/// [`Job`]'s fields, borrowed, in the same order and with the same serde attributes (a test
/// compares the two outputs).
#[derive(Serialize)]
struct EnvelopeRef<'a, P: Serialize + ?Sized> {
    id: &'a JobId,
    kind: &'a str,
    queue: &'a QueueName,
    payload: &'a P,
    attempt: u32,
    max_attempts: u32,
    enqueued_at: &'a DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<&'a str>,
    correlation_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dedup_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        let queue = QueueName::new("envelope-test").expect("name");
        Job::new(
            queue,
            "noop",
            serde_json::json!({ "text": "hi", "n": [1, 2] }),
        )
    }

    #[test]
    fn the_borrowed_envelope_writes_what_a_job_with_that_dedup_key_writes() {
        let bare = job();
        let full = job()
            .with_tenant("t1")
            .with_correlation_id("c1")
            .with_dedup_key("old")
            .next_attempt("boom");
        for job in [bare, full] {
            let expected = job.clone().with_dedup_key("k1").to_json();
            assert_eq!(job.to_json_with_dedup_key("k1"), expected);
            let back: Job = serde_json::from_str(&expected).expect("decodes");
            assert_eq!(back.dedup_key.as_deref(), Some("k1"));
        }
    }

    #[test]
    fn an_encoded_job_decodes_as_the_job_new_would_build() {
        let queue = QueueName::new("envelope-test").expect("name");
        let raw = serde_json::value::RawValue::from_string(r#"{"b": [1, 2], "a":"x"}"#.into())
            .expect("raw");
        #[derive(Serialize)]
        struct Payload<'a> {
            raw: &'a serde_json::value::RawValue,
        }
        let payload = Payload { raw: &raw };
        let parts = NewJobParts {
            tenant_id: Some("t1"),
            correlation_id: Some("c1"),
            dedup_key: Some("k1"),
        };
        let encoded = EncodedJob::new(&queue, "noop", &payload, parts).expect("encodes");
        let back: Job = serde_json::from_str(encoded.as_json()).expect("decodes");
        let mut expected = Job::new(queue.clone(), "noop", back.payload.clone())
            .with_tenant("t1")
            .with_correlation_id("c1")
            .with_dedup_key("k1");
        expected.id = encoded.id;
        expected.enqueued_at = back.enqueued_at;
        assert_eq!(back, expected);
        assert_eq!(
            back.payload["raw"],
            serde_json::json!({ "a": "x", "b": [1, 2] })
        );
        let own =
            EncodedJob::new(&queue, "noop", &payload, NewJobParts::default()).expect("encodes");
        let back: Job = serde_json::from_str(own.as_json()).expect("decodes");
        assert_eq!(back.correlation_id, own.id.to_string());
        assert_eq!((back.tenant_id, back.dedup_key), (None, None));
    }
}
