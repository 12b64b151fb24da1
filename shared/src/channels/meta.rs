//! What the Messenger and WhatsApp Cloud adapters share: the Graph API's error object
//! (`{"error": {"message", "type", "code", "error_subcode", "error_data", "fbtrace_id"}}`) and
//! its classification through an adapter's table, with the HTTP status as the fallback.

use serde::Deserialize;

use super::{
    http::Answer,
    verdict::{ProviderError, Rule, SendError, class_of_status, lookup},
};

#[derive(Deserialize)]
struct Envelope {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    message: Option<String>,
    code: Option<i64>,
    error_subcode: Option<i64>,
    fbtrace_id: Option<String>,
    /// WhatsApp puts a human explanation in `error_data.details`.
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    details: Option<String>,
}

/// The provider error a non-2xx Graph answer carries (or its raw text when it is not JSON).
pub(super) fn provider_error(answer: &Answer) -> ProviderError {
    let Ok(Envelope { error }) = serde_json::from_slice::<Envelope>(&answer.body) else {
        return ProviderError {
            http_status: Some(answer.status),
            ..ProviderError::message(answer.excerpt())
        };
    };
    let details = error.error_data.and_then(|d| d.details);
    let message = match (error.message, details) {
        (Some(m), Some(d)) => format!("{m}: {d}"),
        (Some(m), None) => m,
        (None, Some(d)) => d,
        (None, None) => answer.excerpt(),
    };
    ProviderError {
        http_status: Some(answer.status),
        code: error.code,
        subcode: error.error_subcode,
        message,
        fbtrace_id: error.fbtrace_id,
    }
}

/// The verdict of `table` on a failed Graph answer: by Graph code when the table knows it, by
/// HTTP status otherwise. Retry-After is kept whatever the class.
pub(super) fn verdict(table: &[Rule], answer: &Answer) -> SendError {
    let error = provider_error(answer);
    let class = error
        .code
        .and_then(|code| lookup(table, code, error.subcode))
        .unwrap_or_else(|| class_of_status(answer.status));
    class.verdict(error, answer.retry_after)
}

/// The id a 2xx answer carries at `pointer` (JSON pointer), or a permanent error: the provider
/// took the message, so retrying could send it twice.
pub(super) fn accepted_id(answer: &Answer, pointer: &str) -> Result<String, SendError> {
    serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| {
            v.pointer(pointer)
                .and_then(|id| id.as_str())
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            SendError::permanent(format!(
                "accepted without a message id (not retried, it may have been sent): {}",
                answer.excerpt()
            ))
        })
}
