//! Email adapter: a plain-text reply over SMTP (lettre), threaded into the customer's
//! conversation with `In-Reply-To` and `References` (RFC 5322 §3.6.4) and a `Re:` subject.
//!
//! The Message-ID is derived from our message id, so a resend after a crash carries the same
//! Message-ID and mail clients show it once; it is also the provider message id we return.
//! SMTP reply codes are classified by [`ERRORS`]; transport failures are transient.

use std::time::Duration;

use futures::future::BoxFuture;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};

use super::{
    ChannelSender, EmailThread, OutboundMessage, Sent,
    verdict::{Class, ProviderError, Rule, SendError, ThrottleScope, lookup},
};
use crate::{config::Secret, inboxes::InboxKind};

/// SMTP reply codes (RFC 5321 §4.2), first match wins.
pub const ERRORS: &[Rule] = &[
    // Authentication required or refused: the inbox's credentials are wrong.
    Rule::code(530, Class::ChannelBroken),
    Rule::code(535, Class::ChannelBroken),
    Rule::code(534, Class::ChannelBroken),
    // Too many messages / connections: slow the inbox down.
    Rule::code(421, Class::Throttled(ThrottleScope::Inbox)),
    Rule::code(452, Class::Throttled(ThrottleScope::Inbox)),
    // Other temporary failures (mailbox busy, local error, greylisting).
    Rule::range(400, 499, Class::Transient),
    // Mailbox unavailable, not local, storage exceeded, name not allowed, transaction failed.
    Rule::range(500, 599, Class::Permanent),
];

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Implicit TLS (port 465).
    Tls,
    /// STARTTLS required (port 587).
    StartTls,
    /// No TLS: a local relay or a test server only.
    Plain,
}

/// The SMTP account one email inbox replies through.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The inbox's address, e.g. `Acme Support <support@acme.example>`.
    pub from: String,
    /// One attempt, connect to the server's final answer.
    pub timeout: Duration,
}

pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl EmailSender {
    /// A sender with its own connection pool to the inbox's SMTP server.
    pub fn new(config: &SmtpConfig) -> Result<Self, SendError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| broken(format!("inbox from address {:?}: {e}", config.from)))?;
        let tls = match config.security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls_parameters(&config.host)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(&config.host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(config.timeout));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    async fn send_mail(&self, message: &OutboundMessage) -> Result<Sent, SendError> {
        let message_id = message_id(&message.message_id, &self.from);
        let mail = compose(&self.from, &message_id, message)?;
        self.transport.send(mail).await.map_err(|e| verdict(&e))?;
        Ok(Sent {
            provider_message_id: message_id,
        })
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters, SendError> {
    TlsParameters::new(host.to_owned()).map_err(|e| broken(format!("tls for {host}: {e}")))
}

fn broken(message: String) -> SendError {
    SendError::ChannelBroken {
        error: ProviderError::message(message),
    }
}

/// `<{our id}@{the inbox's domain}>`: stable across retries of the same message.
pub fn message_id(our_id: &str, from: &Mailbox) -> String {
    format!("<{our_id}@{}>", from.email.domain())
}

/// The reply as a mail: threading headers from `message.email`, when it has them.
pub fn compose(
    from: &Mailbox,
    message_id: &str,
    message: &OutboundMessage,
) -> Result<Message, SendError> {
    let to: Mailbox = message
        .recipient
        .parse()
        .map_err(|e| SendError::permanent(format!("recipient {:?}: {e}", message.recipient)))?;
    let thread = message.email.clone().unwrap_or_default();
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(reply_subject(&thread.subject))
        .message_id(Some(message_id.to_owned()))
        .header(ContentType::TEXT_PLAIN);
    if let Some(parent) = &thread.in_reply_to {
        builder = builder.in_reply_to(angled(parent));
    }
    if let Some(references) = references(&thread) {
        builder = builder.references(references);
    }
    builder
        .body(message.text.clone())
        .map_err(|e| SendError::permanent(format!("cannot build the mail: {e}")))
}

/// The thread's ids, then the parent if it is not already last: what RFC 5322 asks of a reply.
fn references(thread: &EmailThread) -> Option<String> {
    let mut ids: Vec<String> = thread.references.iter().map(|id| angled(id)).collect();
    if let Some(parent) = &thread.in_reply_to {
        let parent = angled(parent);
        if ids.last() != Some(&parent) {
            ids.push(parent);
        }
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

fn angled(id: &str) -> String {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    format!("<{id}>")
}

/// `Re: ` in front of the subject, once.
fn reply_subject(subject: &str) -> String {
    let subject = subject.trim();
    if subject.is_empty() {
        "Re: your message".into()
    } else if subject.len() >= 3 && subject[..3].eq_ignore_ascii_case("re:") {
        subject.to_owned()
    } else {
        format!("Re: {subject}")
    }
}

fn verdict(error: &lettre::transport::smtp::Error) -> SendError {
    let code = error.status().map(u16::from);
    let provider = ProviderError {
        code: code.map(i64::from),
        ..ProviderError::message(error.to_string())
    };
    match code {
        Some(code) => lookup(ERRORS, i64::from(code), None)
            .unwrap_or(Class::Transient)
            .verdict(provider, None),
        // No reply code: connection refused or reset, timeout, TLS handshake.
        None => SendError::Transient { error: provider },
    }
}

impl ChannelSender for EmailSender {
    fn kind(&self) -> InboxKind {
        InboxKind::Email
    }

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Sent, SendError>> {
        Box::pin(self.send_mail(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_get_one_re() {
        assert_eq!(reply_subject("Order 42"), "Re: Order 42");
        assert_eq!(reply_subject("RE: Order 42"), "RE: Order 42");
        assert_eq!(reply_subject(""), "Re: your message");
    }

    #[test]
    fn references_end_with_the_parent() {
        let thread = EmailThread {
            subject: "x".into(),
            in_reply_to: Some("c2@mail.example".into()),
            references: vec!["<c1@mail.example>".into()],
        };
        assert_eq!(
            references(&thread).as_deref(),
            Some("<c1@mail.example> <c2@mail.example>")
        );
        let none = EmailThread::default();
        assert_eq!(references(&none), None);
    }
}
