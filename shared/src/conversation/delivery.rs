//! The `deliveries` job of an outbound message: everything a channel sender needs, so the
//! deliveries handler (shared::channels) sends without re-deriving the conversation.
//!
//! Kind `delivery.send` on queue `deliveries`, payload (version 1):
//! `{"v": 1, "message_id", "tenant_id", "inbox_id", "session_id", "channel", "recipient",
//! "text", "sender_type", "agent_id", "contact": {…}, "email": {"subject", "in_reply_to",
//! "references"} | null}`. The recipient is spelled the way the channel wants it (WAHA chat id,
//! WhatsApp wa_id, Messenger PSID, email address, or the widget session's broadcast channel).
//! The job's dedup key is `delivery:<message id>`, so staging it twice enqueues it once; the
//! sender must still be idempotent by message id (delivery is at least once).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use super::{Contact, ConversationError, Message, Session, Tx};
use crate::{
    db::schema::messages,
    inboxes::InboxKind,
    queue::{Job, QueueName},
};

pub const DELIVERIES_QUEUE: &str = "deliveries";
pub const DELIVERY_SEND: &str = "delivery.send";

/// The email thread a reply continues: the customer's last email in the session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmailThread {
    pub subject: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

/// The thread of an email session (`None` for other channels).
pub async fn email_thread(
    tx: &mut Tx,
    session: &Session,
    kind: InboxKind,
) -> Result<Option<EmailThread>, ConversationError> {
    if kind != InboxKind::Email {
        return Ok(None);
    }
    let last: Option<(Option<String>, Value)> = messages::table
        .filter(messages::session_id.eq(&session.id))
        .filter(messages::direction.eq("inbound"))
        .order(messages::created_at.desc())
        .select((messages::provider_message_id, messages::payload))
        .first(tx.conn())
        .await
        .optional()?;
    let Some((id, payload)) = last else {
        return Ok(None);
    };
    let subject = payload["subject"].as_str().unwrap_or_default();
    let subject = if subject.to_ascii_lowercase().starts_with("re:") || subject.is_empty() {
        subject.to_owned()
    } else {
        format!("Re: {subject}")
    };
    let message_id = payload["message_id"].as_str().map(str::to_owned).or(id);
    let mut references: Vec<String> = payload["references"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    references.extend(message_id.clone());
    Ok(Some(EmailThread {
        subject,
        in_reply_to: message_id,
        references,
    }))
}

/// How the channel addresses the customer (`channel_prefix`: the deployment's BROADCAST_PREFIX,
/// for the widget, whose replies are published on the session's channel).
pub fn recipient(
    kind: InboxKind,
    session: &Session,
    contact: &Contact,
    channel_prefix: &str,
) -> String {
    match kind {
        InboxKind::Email => contact
            .email
            .clone()
            .unwrap_or_else(|| contact.external_id.clone()),
        // The widget sender publishes on exactly this name, so it carries BROADCAST_PREFIX.
        InboxKind::Widget => format!(
            "{channel_prefix}private-tenant.{}.session.{}",
            session.tenant_id, session.id
        ),
        _ => contact.external_id.clone(),
    }
}

/// The `delivery.send` job for `message`, and its dedup key.
pub fn job(
    message: &Message,
    session: &Session,
    contact: &Contact,
    kind: InboxKind,
    thread: Option<EmailThread>,
    channel_prefix: &str,
) -> (Job, String) {
    let email = thread.map(|t| {
        json!({ "subject": t.subject, "in_reply_to": t.in_reply_to, "references": t.references })
    });
    let payload = json!({
        "v": 1,
        "message_id": message.id,
        "tenant_id": message.tenant_id,
        "inbox_id": message.inbox_id,
        "session_id": session.id,
        "channel": kind.as_str(),
        "recipient": recipient(kind, session, contact, channel_prefix),
        "text": message.body,
        "sender_type": message.sender_type,
        "agent_id": message.agent_id,
        "contact": super::sessions::contact_json(contact),
        "email": email,
    });
    // A literal, valid queue name.
    let queue = QueueName::new(DELIVERIES_QUEUE)
        .unwrap_or_else(|_| unreachable!("deliveries is a valid queue name"));
    let job = Job::new(queue, DELIVERY_SEND, payload)
        .with_tenant(&message.tenant_id)
        .with_correlation_id(&session.correlation_id);
    (job, format!("delivery:{}", message.id))
}
