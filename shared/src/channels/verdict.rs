//! Verdicts: what a failed send means for the message and the inbox, and how each adapter's
//! error table (data, not `if` chains) turns a provider's answer into one.
//!
//! Four classes, named for what the deliveries job does next: [`SendError::Throttled`] (retry
//! later; slow the inbox, or only that recipient), [`SendError::Transient`] (retry on the
//! deliveries schedule), [`SendError::ChannelBroken`] (pause the inbox and alert; retrying cannot
//! help until a human fixes the token or account) and [`SendError::Permanent`] (fail this message
//! at once). Each keeps the provider's error text, code and `fbtrace_id` for failed_jobs and
//! Sentry. [`job_error`] is the one place a verdict becomes a [`JobError`].

use std::{fmt, time::Duration};

use crate::jobs::JobError;

/// What the provider said, kept verbatim enough for an on-call engineer or Meta support.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderError {
    /// HTTP status, when an HTTP answer came back (none for timeouts and connection errors).
    pub http_status: Option<u16>,
    /// The provider's error code (Graph `error.code`, SMTP reply code).
    pub code: Option<i64>,
    /// Graph `error.error_subcode`.
    pub subcode: Option<i64>,
    /// The provider's message, or a description of the transport failure.
    pub message: String,
    /// Meta's request trace id, which Meta support asks for.
    pub fbtrace_id: Option<String>,
}

impl ProviderError {
    pub fn message(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            self.http_status.map(|s| format!("http {s}")),
            self.code.map(|c| format!("code {c}")),
            self.subcode.map(|s| format!("subcode {s}")),
            self.fbtrace_id.as_ref().map(|t| format!("fbtrace_id {t}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        f.write_str(&self.message)?;
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

/// Who a throttle verdict slows down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleScope {
    /// The whole inbox (app, page or phone number limits): shrink its token bucket.
    Inbox,
    /// Only this recipient (WhatsApp pair rate limit 131056): hold sends to them.
    Recipient,
}

/// Why one attempt did not deliver, and so what happens next.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The provider asked us to slow down; `retry_after` is its Retry-After when it gave one.
    #[error("throttled: {error}")]
    Throttled {
        scope: ThrottleScope,
        retry_after: Option<Duration>,
        error: ProviderError,
    },
    /// Worth another try on the deliveries schedule (timeouts, connection errors, 5xx).
    #[error("transient: {error}")]
    Transient { error: ProviderError },
    /// The inbox cannot send anything until a human acts (token expired, permission removed,
    /// account locked or blocked): pause the inbox's deliveries and alert.
    #[error("channel broken: {error}")]
    ChannelBroken { error: ProviderError },
    /// This message can never be sent (invalid recipient, window closed, unsupported).
    #[error("permanent: {error}")]
    Permanent { error: ProviderError },
}

impl SendError {
    pub fn error(&self) -> &ProviderError {
        match self {
            Self::Throttled { error, .. }
            | Self::Transient { error }
            | Self::ChannelBroken { error }
            | Self::Permanent { error } => error,
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            error: ProviderError::message(message),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            error: ProviderError::message(message),
        }
    }
}

/// How long a throttled send waits when the provider gave no Retry-After.
pub const DEFAULT_THROTTLE_DELAY: Duration = Duration::from_secs(60);

/// How long a job waits when its inbox is broken: the longest delay the queue allows (an hour),
/// so that a paused inbox burns as few attempts as possible (see docs/deliveries.md on pausing).
pub const CHANNEL_BROKEN_DELAY: Duration = Duration::from_secs(3600);

/// The one mapping from a verdict to what the queue does with the job.
pub fn job_error(error: &SendError) -> JobError {
    let reason = error.to_string();
    match error {
        SendError::Throttled { retry_after, .. } => JobError::RetryAfter {
            after: retry_after.unwrap_or(DEFAULT_THROTTLE_DELAY),
            reason,
        },
        SendError::Transient { .. } => JobError::Transient(reason),
        SendError::ChannelBroken { .. } => JobError::RetryAfter {
            after: CHANNEL_BROKEN_DELAY,
            reason,
        },
        SendError::Permanent { .. } => JobError::Permanent(reason),
    }
}

/// A class in an adapter's error table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Throttled(ThrottleScope),
    Transient,
    ChannelBroken,
    Permanent,
}

impl Class {
    /// The verdict of this class for `error`.
    pub fn verdict(self, error: ProviderError, retry_after: Option<Duration>) -> SendError {
        match self {
            Self::Throttled(scope) => SendError::Throttled {
                scope,
                retry_after,
                error,
            },
            Self::Transient => SendError::Transient { error },
            Self::ChannelBroken => SendError::ChannelBroken { error },
            Self::Permanent => SendError::Permanent { error },
        }
    }
}

/// One row of an error table: a code (or inclusive range of codes), optionally narrowed to one
/// subcode, and its class. Tables are searched in order; the first matching row wins, so narrow
/// rows (code 10 with subcode 2018278) come before broad ones (code 10).
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub codes: (i64, i64),
    pub subcode: Option<i64>,
    pub class: Class,
}

impl Rule {
    pub const fn code(code: i64, class: Class) -> Self {
        Self {
            codes: (code, code),
            subcode: None,
            class,
        }
    }

    pub const fn range(first: i64, last: i64, class: Class) -> Self {
        Self {
            codes: (first, last),
            subcode: None,
            class,
        }
    }

    pub const fn subcode(code: i64, subcode: i64, class: Class) -> Self {
        Self {
            codes: (code, code),
            subcode: Some(subcode),
            class,
        }
    }

    fn matches(&self, code: i64, subcode: Option<i64>) -> bool {
        (self.codes.0..=self.codes.1).contains(&code)
            && self.subcode.is_none_or(|want| subcode == Some(want))
    }
}

/// The class `table` gives `code` (and `subcode`), if any row matches. A subcode alone also
/// matches a row naming it as a code: Meta reports some errors (2018001, 2018278) only that way.
pub fn lookup(table: &[Rule], code: i64, subcode: Option<i64>) -> Option<Class> {
    let by_code = table.iter().find(|rule| rule.matches(code, subcode));
    let by_subcode = || {
        let sub = subcode?;
        table
            .iter()
            .find(|rule| rule.subcode.is_none() && rule.matches(sub, None))
    };
    by_code.or_else(by_subcode).map(|rule| rule.class)
}

/// The class an HTTP status alone implies, for answers without a recognised provider code.
pub fn class_of_status(status: u16) -> Class {
    match status {
        429 => Class::Throttled(ThrottleScope::Inbox),
        408 | 425 | 500..=599 => Class::Transient,
        401 | 403 => Class::ChannelBroken,
        _ => Class::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[Rule] = &[
        Rule::subcode(10, 2018278, Class::Permanent),
        Rule::code(10, Class::ChannelBroken),
        Rule::range(200, 299, Class::ChannelBroken),
        Rule::code(2018001, Class::Permanent),
    ];

    #[test]
    fn narrow_rows_win_and_ranges_cover_their_ends() {
        assert_eq!(lookup(TABLE, 10, Some(2018278)), Some(Class::Permanent));
        assert_eq!(lookup(TABLE, 10, None), Some(Class::ChannelBroken));
        assert_eq!(lookup(TABLE, 200, None), Some(Class::ChannelBroken));
        assert_eq!(lookup(TABLE, 299, None), Some(Class::ChannelBroken));
        assert_eq!(lookup(TABLE, 300, None), None);
        assert_eq!(lookup(TABLE, 100, Some(2018001)), Some(Class::Permanent));
    }

    #[test]
    fn verdicts_map_to_job_errors() {
        let throttled = SendError::Throttled {
            scope: ThrottleScope::Inbox,
            retry_after: Some(Duration::from_secs(7)),
            error: ProviderError::message("slow down"),
        };
        assert!(matches!(
            job_error(&throttled),
            JobError::RetryAfter { after, .. } if after == Duration::from_secs(7)
        ));
        assert!(matches!(
            job_error(&SendError::transient("x")),
            JobError::Transient(_)
        ));
        assert!(matches!(
            job_error(&SendError::permanent("x")),
            JobError::Permanent(_)
        ));
    }

    #[test]
    fn display_keeps_code_and_trace_id() {
        let error = ProviderError {
            http_status: Some(400),
            code: Some(131047),
            subcode: None,
            message: "Re-engagement message".into(),
            fbtrace_id: Some("AbC123".into()),
        };
        assert_eq!(
            error.to_string(),
            "Re-engagement message (http 400, code 131047, fbtrace_id AbC123)"
        );
    }
}
