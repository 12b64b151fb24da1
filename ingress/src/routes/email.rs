//! `POST /webhooks/email/{inbox}`: inbound email → the `email` queue, one `email.message` job per
//! email, deduplicated on the Message-ID header.
//!
//! An email inbox is configured for one inbound-parse provider, and that decides how the request
//! is authenticated and parsed: Mailgun (form-encoded, signed in the body, see `mailgun`) or
//! Postmark (JSON, basic auth in the webhook URL, see `postmark`). An email without a Message-ID
//! (rare, but legal) is deduplicated on a hash of its content instead of being refused.

use hyper::{Request, body::Incoming};
use sha2::{Digest, Sha256};
use shared::inboxes::{EmailAuth, InboxKind};

use super::{Ctx, Reply, inbox_from_path, mailgun, postmark};
use crate::{State, errors::IngressError};

pub async fn receive(
    state: &State,
    ctx: &Ctx,
    inbox_id: &str,
    request: Request<Incoming>,
) -> Result<Reply, IngressError> {
    let inbox = inbox_from_path(state, inbox_id, InboxKind::Email).await?;
    match &inbox.email {
        Some(EmailAuth::Mailgun { signing_key }) => {
            mailgun::receive(state, ctx, &inbox, signing_key, request).await
        }
        Some(EmailAuth::Postmark { user, password }) => {
            postmark::receive(state, ctx, &inbox, (user, password), request).await
        }
        None => Err(IngressError::UnknownInbox),
    }
}

/// The dedup key of an email: its Message-ID without the angle brackets, else a content hash.
pub fn dedup_key<'a>(
    message_id: Option<&str>,
    content: impl IntoIterator<Item = &'a [u8]>,
) -> String {
    match message_id.map(|id| id.trim().trim_start_matches('<').trim_end_matches('>')) {
        Some(id) if !id.is_empty() => format!("message:{id}"),
        _ => {
            let mut hash = Sha256::new();
            content.into_iter().for_each(|part| {
                hash.update((part.len() as u64).to_be_bytes());
                hash.update(part);
            });
            format!("content:{}", hex::encode(hash.finalize()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_dedup_with_or_without_brackets() {
        assert_eq!(dedup_key(Some("<a@b>"), []), "message:a@b");
        assert_eq!(dedup_key(Some(" a@b "), []), "message:a@b");
        let one = dedup_key(None, [b"x".as_slice(), b"y"]);
        assert!(one.starts_with("content:"));
        assert_eq!(one, dedup_key(Some("<>"), [b"x".as_slice(), b"y"]));
        assert_ne!(one, dedup_key(None, [b"xy".as_slice()]));
    }
}
