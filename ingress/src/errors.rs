//! Why a request was refused, and the precise answer each reason gets (DESIGN.md §7, "What ingress
//! answers, precisely").
//!
//! Every refusal is one [`IngressError`] variant, named for what the caller can do next: fix the
//! request (4xx, never retried usefully) or come back later (503 with `Retry-After`, so the
//! provider redelivers and nothing is lost). The JSON body says what is wrong and, for bad input,
//! which field; `reason()` is the label of the `ingress_rejected_total` metric. No message ever
//! contains a secret or a byte of the request body.

use hyper::StatusCode;

/// A refused request.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("no such route")]
    UnknownRoute,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("unknown inbox")]
    UnknownInbox,
    #[error("{0} webhooks are not configured on this deployment")]
    NotConfigured(&'static str),
    #[error("{0}")]
    Unauthorized(AuthFailure),
    #[error("verify token does not match")]
    WrongVerifyToken,
    #[error("token already used")]
    TokenReused,
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("content type must be {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("{field} {problem}")]
    Invalid { field: String, problem: String },
    #[error("request body not received in time")]
    BodyTimeout,
    #[error("request body could not be read")]
    BodyUnreadable,
    #[error("{store} unavailable, retry later")]
    Unavailable { store: &'static str },
}

/// Why authentication failed; each is a 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("missing signature header {0}")]
    MissingSignature(&'static str),
    #[error("invalid signature")]
    BadSignature,
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    #[error("signature timestamp outside the accepted window")]
    StaleTimestamp,
    #[error("missing credentials")]
    MissingCredentials,
    #[error("invalid credentials")]
    BadCredentials,
}

impl IngressError {
    /// A 400 naming the field.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownRoute | Self::UnknownInbox | Self::NotConfigured(_) => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::WrongVerifyToken => StatusCode::FORBIDDEN,
            // Mailgun stops retrying on 406: a reused token will never become acceptable.
            Self::TokenReused => StatusCode::NOT_ACCEPTABLE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid { .. } | Self::BodyUnreadable => StatusCode::BAD_REQUEST,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The metric label: a small fixed set, safe as a Prometheus label value.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownRoute => "unknown_route",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::UnknownInbox => "unknown_inbox",
            Self::NotConfigured(_) => "not_configured",
            Self::Unauthorized(failure) => failure.reason(),
            Self::WrongVerifyToken => "wrong_verify_token",
            Self::TokenReused => "token_reused",
            Self::TooLarge { .. } => "body_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::Invalid { .. } => "invalid_payload",
            Self::BodyTimeout => "body_timeout",
            Self::BodyUnreadable => "body_unreadable",
            Self::Unavailable { store: "redis" } => "redis_unavailable",
            Self::Unavailable { .. } => "postgres_unavailable",
        }
    }

    /// The JSON error body: `{"error": "...", "field": "..." | null}`.
    pub fn body(&self) -> serde_json::Value {
        let field = match self {
            Self::Invalid { field, .. } => serde_json::Value::String(field.clone()),
            _ => serde_json::Value::Null,
        };
        serde_json::json!({ "error": self.to_string(), "field": field })
    }
}

impl AuthFailure {
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingSignature(_) => "missing_signature",
            Self::BadSignature => "bad_signature",
            Self::UnsupportedAlgorithm => "unsupported_signature_algorithm",
            Self::StaleTimestamp => "stale_timestamp",
            Self::MissingCredentials => "missing_credentials",
            Self::BadCredentials => "bad_credentials",
        }
    }
}

impl From<shared::db::DbError> for IngressError {
    fn from(error: shared::db::DbError) -> Self {
        tracing::warn!(error = %error, "postgres unavailable");
        Self::Unavailable { store: "postgres" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_names_its_field() {
        let error = IngressError::invalid("entry[0].id", "must be a string");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            error.body(),
            serde_json::json!({"error": "entry[0].id must be a string", "field": "entry[0].id"})
        );
    }
}
