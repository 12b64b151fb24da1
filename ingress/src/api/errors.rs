//! Why an API request was refused, and the status and JSON body each reason gets:
//! `{"error": "<what is wrong>", "code": "<stable label>", "field": "<field>"|null}`, plus the
//! states for an illegal transition (`entity`, `from`, `to`).

use hyper::StatusCode;
use serde_json::{Value, json};
use shared::conversation::ConversationError;

use crate::errors::IngressError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no such endpoint")]
    UnknownRoute,
    #[error("method not allowed (allowed: {0})")]
    MethodNotAllowed(&'static str),
    #[error("missing API key: send Authorization: Bearer <key>")]
    MissingKey,
    #[error("invalid or revoked API key")]
    BadKey,
    #[error("{0}")]
    Forbidden(&'static str),
    /// Body problems: size, media type, JSON syntax, timeouts.
    #[error("{0}")]
    Body(IngressError),
    #[error("{field} {problem}")]
    Invalid { field: String, problem: String },
    #[error(transparent)]
    Conversation(#[from] ConversationError),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        use ConversationError as C;
        match self {
            Self::UnknownRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::MissingKey | Self::BadKey => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Body(error) => error.status(),
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Conversation(error) => match error {
                C::Illegal(_) | C::Conflict(_) => StatusCode::CONFLICT,
                C::NotFound { .. } => StatusCode::NOT_FOUND,
                C::Invalid { .. } => StatusCode::BAD_REQUEST,
                e if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn code(&self) -> &'static str {
        use ConversationError as C;
        match self {
            Self::UnknownRoute => "unknown_route",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::MissingKey => "missing_api_key",
            Self::BadKey => "invalid_api_key",
            Self::Forbidden(_) => "forbidden",
            Self::Body(error) => error.reason(),
            Self::Invalid { .. } => "invalid_input",
            Self::Conversation(error) => match error {
                C::Illegal(_) => "illegal_transition",
                C::Conflict(_) => "conflict",
                C::NotFound { .. } => "not_found",
                C::Invalid { .. } => "invalid_input",
                e if e.is_transient() => "unavailable",
                _ => "internal",
            },
        }
    }

    pub fn body(&self) -> Value {
        let field = match self {
            Self::Invalid { field, .. }
            | Self::Conversation(ConversationError::Invalid { field, .. }) => json!(field),
            Self::Body(IngressError::Invalid { field, .. }) => json!(field),
            _ => Value::Null,
        };
        // A database error's text is for the logs, not for API clients.
        let message = match self.status() {
            StatusCode::SERVICE_UNAVAILABLE => "temporarily unavailable, retry later".to_owned(),
            StatusCode::INTERNAL_SERVER_ERROR => "internal error".to_owned(),
            _ => self.to_string(),
        };
        let mut body = json!({ "error": message, "code": self.code(), "field": field });
        if let Self::Conversation(ConversationError::Illegal(t)) = self {
            body["entity"] = json!(t.entity);
            body["from"] = json!(t.from);
            body["to"] = json!(t.to);
        }
        body
    }
}

impl From<IngressError> for ApiError {
    fn from(error: IngressError) -> Self {
        Self::Body(error)
    }
}
